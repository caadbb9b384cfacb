//go:build !unix

package datacopy

// processAlive cannot tell elsewhere: every holder is taken for alive.
func processAlive(int) bool { return true }
