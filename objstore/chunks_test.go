package objstore

import (
	"bytes"
	"io"
	"testing"
)

func TestChunksReader(t *testing.T) {
	chunks := [][]byte{[]byte("ab"), {}, []byte("cde"), []byte("f"), {}}
	r := newChunksReader(chunks)
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "abcdef" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	for _, tt := range []struct {
		off    int64
		whence int
		want   string
	}{
		{0, io.SeekStart, "abcdef"},
		{3, io.SeekStart, "def"},
		{-1, io.SeekEnd, "f"},
		{0, io.SeekEnd, ""},
		{2, io.SeekStart, "cdef"},
	} {
		if _, err := r.Seek(tt.off, tt.whence); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		// Tiny reads cross chunk boundaries one byte at a time.
		p := make([]byte, 1)
		for {
			n, err := r.Read(p)
			buf.Write(p[:n])
			if err == io.EOF {
				break
			}
		}
		if buf.String() != tt.want {
			t.Errorf("after Seek(%d, %d): %q, want %q", tt.off, tt.whence, buf.String(), tt.want)
		}
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Error("negative seek accepted")
	}
}
