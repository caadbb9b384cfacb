package objstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
)

// ChunkWriter is implemented by stores that write one object from several
// buffers without joining them first: a snapshot is written from the values
// as read from etcd, so joining would double the peak memory.
type ChunkWriter interface {
	PutChunks(ctx context.Context, key string, chunks [][]byte) error
}

// PutChunks writes the concatenation of chunks as one object, atomically
// like Put, without a joined copy where the store allows.
func PutChunks(ctx context.Context, s Store, key string, chunks [][]byte) error {
	if cw, ok := s.(ChunkWriter); ok {
		return cw.PutChunks(ctx, key, chunks)
	}
	return s.Put(ctx, key, bytes.Join(chunks, nil))
}

// chunksReader reads a list of buffers as one stream; it seeks (the S3
// SDK rewinds bodies to sign and to retry) by binary search on offsets.
type chunksReader struct {
	chunks [][]byte
	starts []int64 // starts[i] is the offset of chunks[i]
	size   int64
	pos    int64
}

func newChunksReader(chunks [][]byte) *chunksReader {
	r := &chunksReader{chunks: chunks, starts: make([]int64, len(chunks))}
	for i, c := range chunks {
		r.starts[i] = r.size
		r.size += int64(len(c))
	}
	return r
}

func (r *chunksReader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	n := 0
	// The last chunk starting at or before pos.
	i := sort.Search(len(r.starts), func(i int) bool { return r.starts[i] > r.pos }) - 1
	for ; i < len(r.chunks) && n < len(p); i++ {
		c := r.chunks[i][r.pos-r.starts[i]:]
		k := copy(p[n:], c)
		n += k
		r.pos += int64(k)
	}
	return n, nil
}

func (r *chunksReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("chunksReader: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("chunksReader: negative position")
	}
	r.pos = offset
	return offset, nil
}
