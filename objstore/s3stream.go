package objstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// s3PartSize is the multipart part size: S3's minimum is 5 MiB (except the
// last part) and its maximum count 10000, so 8 MiB parts hold objects up
// to 78 GiB. Two parts upload while a third fills: memory stays at ~24 MiB
// whatever the object's size. A variable so tests can use small parts.
var s3PartSize = 8 << 20

const s3PartsInFlight = 2

// PutStream implements StreamPutter as an S3 multipart upload. An object
// smaller than one part goes up as one PutObject. The upload is completed
// only if write succeeded; otherwise it is aborted, so no reader ever sees
// a part of the object.
func (s *s3Store) PutStream(ctx context.Context, key string, write func(io.Writer) error) error {
	if err := checkKey(key); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := &s3Upload{s: s, ctx: ctx, key: key, buf: make([]byte, 0, s3PartSize), sem: make(chan struct{}, s3PartsInFlight)}
	err := write(u)
	if err == nil {
		err = u.finish()
	}
	if err != nil {
		cancel()
		u.abort()
		return err
	}
	return nil
}

type s3Upload struct {
	s    *s3Store
	ctx  context.Context
	key  string
	id   string // upload id once the first part is full
	buf  []byte
	sem  chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	done []types.CompletedPart
	err  error
	free [][]byte // part buffers to reuse
}

func (u *s3Upload) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *s3Upload) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := u.failed(); err != nil {
			return n, err
		}
		k := copy(u.buf[len(u.buf):cap(u.buf)], p)
		u.buf = u.buf[:len(u.buf)+k]
		p, n = p[k:], n+k
		if len(u.buf) == cap(u.buf) {
			if err := u.flushPart(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flushPart uploads the full buffer as the next part, in the background.
func (u *s3Upload) flushPart() error {
	if u.id == "" {
		out, err := u.s.client.CreateMultipartUpload(u.ctx, &s3.CreateMultipartUploadInput{Bucket: &u.s.bucket, Key: &u.key})
		if err != nil {
			return u.s.wrap(u.ctx, "put", u.key, err)
		}
		u.id = aws.ToString(out.UploadId)
	}
	u.mu.Lock()
	num := int32(len(u.done) + 1)
	u.done = append(u.done, types.CompletedPart{PartNumber: aws.Int32(num)})
	u.mu.Unlock()
	part := u.buf
	u.sem <- struct{}{}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer func() { <-u.sem }()
		out, err := u.s.client.UploadPart(u.ctx, &s3.UploadPartInput{Bucket: &u.s.bucket, Key: &u.key, UploadId: &u.id,
			PartNumber: aws.Int32(num), Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part)))})
		u.mu.Lock()
		defer u.mu.Unlock()
		if err != nil {
			if u.err == nil {
				u.err = fmt.Errorf("upload part %d: %w", num, u.s.wrap(u.ctx, "put", u.key, err))
			}
			return
		}
		u.done[num-1].ETag = out.ETag
		u.free = append(u.free, part[:0])
	}()
	u.mu.Lock()
	if n := len(u.free); n > 0 {
		u.buf, u.free = u.free[n-1], u.free[:n-1]
	} else {
		u.buf = make([]byte, 0, s3PartSize)
	}
	u.mu.Unlock()
	return nil
}

func (u *s3Upload) finish() error {
	if u.id == "" {
		// Smaller than one part: one PutObject.
		_, err := u.s.put(u.ctx, u.key, u.buf, nil)
		return err
	}
	if len(u.buf) > 0 {
		if err := u.flushPart(); err != nil {
			return err
		}
	}
	u.wg.Wait()
	if err := u.failed(); err != nil {
		return err
	}
	_, err := u.s.client.CompleteMultipartUpload(u.ctx, &s3.CompleteMultipartUploadInput{Bucket: &u.s.bucket, Key: &u.key, UploadId: &u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.done}})
	if err != nil {
		return u.s.wrap(u.ctx, "put", u.key, err)
	}
	return nil
}

// abort waits for parts in flight and drops the upload; best effort (a
// bucket lifecycle rule removes what a crash leaves).
func (u *s3Upload) abort() {
	u.wg.Wait()
	if u.id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(u.ctx), 30e9)
	defer cancel()
	_, _ = u.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.s.bucket, Key: &u.key, UploadId: &u.id})
}
