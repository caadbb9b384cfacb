package objstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// maxCopyObject is S3's limit for a single CopyObject; larger objects are
// copied part by part with UploadPartCopy.
const maxCopyObject = 5 << 30

// copyPartSize is the part size of a server-side multipart copy.
const copyPartSize = 512 << 20

// ErrNoServerCopy means two stores cannot copy between each other server
// side (different endpoints, accounts, or kinds); stream the bytes instead.
var ErrNoServerCopy = errors.New("no server-side copy between these stores")

// ServerCopy copies srcKey of src to dstKey of dst without the bytes
// passing through this process, when both are S3 buckets on the same
// endpoint with the same access key: CopyObject, or UploadPartCopy parts
// for objects over 5 GiB. Otherwise it returns ErrNoServerCopy. size is
// the source object's size, or -1 when unknown (one request is saved: the
// copy is tried whole, and split only if the server says it is too large).
//
// It returns the ETag the server gave the copy (from the CopyObject or
// CompleteMultipartUpload response), so the caller needs no HEAD to learn
// it: for a single CopyObject it is the content MD5 of what was written
// (ContentMD5 says when it is not).
func ServerCopy(ctx context.Context, src Store, srcKey string, dst Store, dstKey string, size int64) (string, error) {
	if !CanServerCopy(ctx, src, dst) {
		return "", ErrNoServerCopy
	}
	s, d := src.(*s3Store), dst.(*s3Store)
	if err := checkKey(dstKey); err != nil {
		return "", err
	}
	source := s.bucket + "/" + escapeCopySource(srcKey)
	if size <= maxCopyObject { // size < 0: unknown, try the single copy first
		out, err := d.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &d.bucket, Key: &dstKey, CopySource: &source})
		if err == nil {
			if out.CopyObjectResult == nil {
				return "", nil
			}
			return aws.ToString(out.CopyObjectResult.ETag), nil
		}
		if isNotFound(err) {
			return "", fmt.Errorf("objstore: %s: copy %q: %w", s.url, srcKey, ErrNotFound)
		}
		code, _ := errCode(err)
		if size >= 0 || (code != "InvalidRequest" && code != "EntityTooLarge") {
			return "", d.wrap(ctx, "copy to", dstKey, err)
		}
		// Too large for CopyObject: part by part.
		info, serr := s.Stat(ctx, srcKey)
		if serr != nil {
			return "", serr
		}
		if size = info.Size; size <= maxCopyObject {
			return "", d.wrap(ctx, "copy to", dstKey, err)
		}
	}
	up, err := d.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &d.bucket, Key: &dstKey})
	if err != nil {
		return "", d.wrap(ctx, "copy to", dstKey, err)
	}
	ok := false
	defer func() {
		if !ok {
			_, _ = d.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &d.bucket, Key: &dstKey, UploadId: up.UploadId})
		}
	}()
	var parts []types.CompletedPart
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+copyPartSize {
		end := min(off+copyPartSize, size) - 1
		out, err := d.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: &d.bucket, Key: &dstKey, UploadId: up.UploadId,
			PartNumber: aws.Int32(n), CopySource: &source, CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end))})
		if err != nil {
			return "", d.wrap(ctx, "copy to", dstKey, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(n)})
	}
	out, err := d.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &d.bucket, Key: &dstKey, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		return "", d.wrap(ctx, "copy to", dstKey, err)
	}
	ok = true
	return aws.ToString(out.ETag), nil
}

// escapeCopySource URL-escapes a key for x-amz-copy-source, keeping "/".
func escapeCopySource(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// ContentMD5 returns the MD5 of an object's bytes as the store already
// knows it, without reading them: an S3 ETag is the content MD5 for an
// object written by one PutObject or CopyObject without SSE-KMS/SSE-C
// (32 hex digits, no "-N" multipart suffix). ok is false when the store
// cannot say (fs, memory, multipart ETags): the caller must read the bytes.
func ContentMD5(s Store, info ObjectInfo) (string, bool) {
	if _, isS3 := s.(*s3Store); !isS3 {
		return "", false
	}
	e := strings.Trim(info.ETag, `"`)
	if len(e) != 32 {
		return "", false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return e, true
}

// CanServerCopy says whether ServerCopy works between two stores: S3
// buckets on one endpoint reached with one access key.
func CanServerCopy(ctx context.Context, src, dst Store) bool {
	s, ok1 := src.(*s3Store)
	d, ok2 := dst.(*s3Store)
	return ok1 && ok2 && s.where == d.where && s.accessKeyID(ctx) != "?" && s.accessKeyID(ctx) == d.accessKeyID(ctx)
}
