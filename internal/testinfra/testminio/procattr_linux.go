package testminio

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill MinIO if the test process dies without
// running its cleanups (a panic, a timeout, SIGKILL).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
