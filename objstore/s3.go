package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/rwsnap/rwsnap/internal/timeouts"
)

const (
	defaultRegion = "us-east-1"
	// The SDK's standard retryer (exponential backoff with jitter, retry
	// quota) with a few attempts; conditional-write failures (412/409) are
	// not retried by it.
	s3MaxAttempts = 4
	// DeleteObjects takes at most 1000 keys per request.
	deleteBatch = 1000
	// maxIdleConns is the idle connections kept per endpoint: as many as
	// the data copy's most parallel requests (datacopy.MaxParallelism x
	// datacopy.ServerCopyFactor).
	maxIdleConns = 1024
)

// s3Store is an S3 bucket reached through aws-sdk-go-v2: AWS S3 for s3://,
// a path-style S3-compatible server (MinIO) for minio://.
type s3Store struct {
	client *s3.Client
	creds  aws.CredentialsProvider
	bucket string
	scheme string
	url    string // redacted
	where  string // endpoint, for error messages
}

func openS3(ctx context.Context, loc location) (Store, error) {
	st := &s3Store{bucket: loc.bucket, scheme: loc.scheme, url: Redact(loc.raw)}
	var opts s3.Options
	if loc.scheme == "minio" {
		st.creds = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(loc.accessKey, loc.secretKey, ""))
		opts = s3.Options{
			Region:       defaultRegion,
			Credentials:  st.creds,
			BaseEndpoint: aws.String(loc.endpoint),
			UsePathStyle: true,
			RetryMode:    aws.RetryModeStandard,
		}
		st.where = loc.endpoint
		compatChecksums(&opts)
		st.client = s3.New(opts, withRetries)
		return st, nil
	}

	// s3://: the AWS default chain (env, shared config/profile, SSO, web
	// identity, IMDS), like RisingWave's s3 backend.
	// The SDK's own logger would print warnings (IMDS fallbacks) past
	// rwsnap's log format; errors carry what matters.
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryMode(aws.RetryModeStandard), config.WithLogger(logging.Nop{}))
	if err != nil {
		return nil, fmt.Errorf("objstore: %s: loading AWS configuration: %w", st.url, redactErr(err))
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	st.creds = cfg.Credentials
	st.where = "AWS S3 (" + cfg.Region + ")"
	endpoint := firstEnv("RWSNAP_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	st.client = s3.NewFromConfig(cfg, withRetries, func(o *s3.Options) {
		if endpoint != "" {
			// An explicit endpoint means an S3-compatible server: those
			// want path-style requests and may not know the SDK's default
			// CRC checksums.
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
			compatChecksums(o)
			st.where = endpoint
		}
	})
	return st, nil
}

func withRetries(o *s3.Options) {
	o.RetryMaxAttempts = s3MaxAttempts
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = s3MaxAttempts
		so.Retryables = append([]retry.IsErrorRetryable{silentServer}, so.Retryables...)
	})
	o.HTTPClient = httpClient()
}

// silentServer: a server that took the request and sent nothing back for
// timeouts.Operation is not retried (it would hang the command for
// attempts x the timeout); resets, 5xx and throttling still are.
var silentServer = retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
	if err != nil && strings.Contains(err.Error(), "timeout awaiting response headers") {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
})

// httpClient bounds connecting (TCP and TLS) by timeouts.Connect and the
// wait for a response's headers by timeouts.Operation, so a server that
// accepts and never answers fails each attempt instead of hanging it; a
// long upload or download is not cut (the header wait starts after the
// request body is sent, and the body is read as fast as it comes).
func httpClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = timeouts.Connect }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = timeouts.Connect
			tr.ResponseHeaderTimeout = timeouts.Operation
			// The SDK keeps 10 idle connections per host: a data copy
			// with more requests in flight (server-side copies run up to
			// 1024) would close and redial the rest after every request.
			tr.MaxIdleConns, tr.MaxIdleConnsPerHost = maxIdleConns, maxIdleConns
		})
}

// compatChecksums sends checksums only where S3 requires them; older
// S3-compatible servers reject the SDK's default trailing CRC checksums.
func compatChecksums(o *s3.Options) {
	o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(os.Getenv(n)); v != "" {
			return v
		}
	}
	return ""
}

func (s *s3Store) Scheme() string { return s.scheme }
func (s *s3Store) String() string { return s.url }
func (s *s3Store) Close() error   { return nil }

func (s *s3Store) Open(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	body, info, err := s.get(ctx, key, 0, "")
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	return &s3Reader{s: s, ctx: ctx, key: key, info: info, body: body}, info, nil
}

// get issues one GET, from offset off on, of the version tagged ifMatch
// ("" any).
func (s *s3Store) get(ctx context.Context, key string, off int64, ifMatch string) (io.ReadCloser, ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return nil, ObjectInfo{}, err
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if off > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if isNotFound(err) {
			return nil, ObjectInfo{}, fmt.Errorf("objstore: %s: get %q: %w", s.url, key, ErrNotFound)
		}
		return nil, ObjectInfo{}, s.wrap(ctx, "get", key, err)
	}
	info := ObjectInfo{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ETag:    aws.ToString(out.ETag),
		ModTime: aws.ToTime(out.LastModified),
	}
	return out.Body, info, nil
}

// s3Reader streams an object and survives a connection cut mid-body: the
// SDK retries requests, not body reads, so a failed read resumes with a
// ranged GET of the same version (If-Match its ETag) from where it stopped.
type s3Reader struct {
	s       *s3Store
	ctx     context.Context
	key     string
	info    ObjectInfo
	body    io.ReadCloser
	pos     int64
	resumes int
}

func (r *s3Reader) Read(p []byte) (int, error) {
	for {
		n, err := r.body.Read(p)
		r.pos += int64(n)
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && r.pos >= r.info.Size:
			return n, io.EOF
		case err == io.EOF:
			err = io.ErrUnexpectedEOF // cut short: resume
		}
		if rerr := r.resume(err); rerr != nil {
			return n, rerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *s3Reader) resume(cause error) error {
	if r.ctx.Err() != nil || r.resumes+1 >= s3MaxAttempts || r.pos >= r.info.Size {
		return cause
	}
	r.resumes++
	r.body.Close()
	time.Sleep(time.Duration(r.resumes) * 100 * time.Millisecond)
	body, _, err := r.s.get(r.ctx, r.key, r.pos, r.info.ETag)
	if err != nil {
		r.body = io.NopCloser(strings.NewReader(""))
		return fmt.Errorf("resume reading %q at byte %d: %w (after: %v)", r.key, r.pos, err, cause)
	}
	r.body = body
	return nil
}

func (r *s3Reader) Close() error { return r.body.Close() }

func (s *s3Store) Get(ctx context.Context, key string) ([]byte, ObjectInfo, error) {
	// The SDK retries requests, not body reads: a connection cut mid-body
	// would fail the whole operation, so the GET is retried here.
	var lastErr error
	for attempt := 1; attempt <= s3MaxAttempts; attempt++ {
		rc, info, err := s.Open(ctx, key)
		if err != nil {
			return nil, ObjectInfo{}, err
		}
		data, err := readSized(rc, info.Size)
		rc.Close()
		if err == nil {
			return data, info, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
	return nil, ObjectInfo{}, s.wrap(ctx, "get", key, lastErr)
}

func (s *s3Store) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		// A HEAD response has no body, so a missing bucket looks like a
		// missing object here; Get, Put and List name it.
		if isNotFound(err) {
			return ObjectInfo{}, fmt.Errorf("objstore: %s: stat %q: %w", s.url, key, ErrNotFound)
		}
		return ObjectInfo{}, s.wrap(ctx, "stat", key, err)
	}
	return ObjectInfo{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ETag:    aws.ToString(out.ETag),
		ModTime: aws.ToTime(out.LastModified),
	}, nil
}

func (s *s3Store) Put(ctx context.Context, key string, data []byte) error {
	_, err := s.put(ctx, key, data, nil)
	return err
}

// PutIf uses S3 conditional writes: If-None-Match: * to create, If-Match to
// replace a version. Caveat: if a request succeeds but its response is lost,
// the SDK's retry sees 412 and PutIf reports ErrPreconditionFailed although
// the write landed; callers re-read and find their own bytes.
func (s *s3Store) PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	return s.put(ctx, key, data, func(in *s3.PutObjectInput) {
		if ifMatch == "" {
			in.IfNoneMatch = aws.String("*")
		} else {
			in.IfMatch = aws.String(ifMatch)
		}
	})
}

// PutChunks implements ChunkWriter: the body reads the chunks in place.
func (s *s3Store) PutChunks(ctx context.Context, key string, chunks [][]byte) error {
	r := newChunksReader(chunks)
	_, err := s.putBody(ctx, key, r, r.size, nil)
	return err
}

func (s *s3Store) put(ctx context.Context, key string, data []byte, cond func(*s3.PutObjectInput)) (string, error) {
	return s.putBody(ctx, key, bytes.NewReader(data), int64(len(data)), cond)
}

func (s *s3Store) putBody(ctx context.Context, key string, body io.ReadSeeker, size int64, cond func(*s3.PutObjectInput)) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          body,
		ContentLength: aws.Int64(size),
	}
	if cond != nil {
		cond(in)
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		code, status := errCode(err)
		switch {
		case cond == nil: // an unconditional put has no precondition to fail
		case code == "PreconditionFailed" || status == 412,
			code == "ConditionalRequestConflict" || status == 409,
			// If-Match on an object deleted meanwhile.
			code == "NoSuchKey":
			return "", fmt.Errorf("objstore: %s: put %q: %w", s.url, key, ErrPreconditionFailed)
		}
		return "", s.wrap(ctx, "put", key, err)
	}
	return aws.ToString(out.ETag), nil
}

// DeleteBatch is how many keys one Delete call of s removes in one
// request: S3's DeleteObjects takes 1000; elsewhere each key is its own
// operation, so a caller that checks something between deletes (the data
// GC its lock) loses nothing by deleting one at a time.
func DeleteBatch(s Store) int {
	if _, ok := s.(*s3Store); ok {
		return deleteBatch
	}
	return 1
}

func (s *s3Store) Delete(ctx context.Context, keys ...string) error {
	for len(keys) > 0 {
		n := min(len(keys), deleteBatch)
		batch := keys[:n]
		keys = keys[n:]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i := range batch {
			if err := checkKey(batch[i]); err != nil {
				return err
			}
			ids[i] = types.ObjectIdentifier{Key: aws.String(batch[i])}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &s.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return s.wrap(ctx, "delete", batch[0], err)
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			return fmt.Errorf("objstore: %s: delete %q: %s: %s", s.url, aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
	}
	return nil
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.wrap(ctx, "list", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, ObjectInfo{
				Key:     aws.ToString(o.Key),
				Size:    aws.ToInt64(o.Size),
				ETag:    aws.ToString(o.ETag),
				ModTime: aws.ToTime(o.LastModified),
			})
		}
	}
	// S3 lists in UTF-8 byte order already; S3-compatible servers may not.
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// errCode returns the S3 error code ("NoSuchKey") and HTTP status of err.
func errCode(err error) (string, int) {
	var code string
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re interface{ HTTPStatusCode() int }
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

func isNotFound(err error) bool {
	code, status := errCode(err)
	switch code {
	case "NoSuchKey", "NotFound":
		return true
	case "NoSuchBucket":
		return false
	}
	return status == 404 && code == ""
}

// wrap turns an SDK error into one that says what to fix: a missing bucket,
// rejected credentials (naming the access key id, never the secret).
func (s *s3Store) wrap(ctx context.Context, op, key string, err error) error {
	err = redactErr(err)
	code, status := errCode(err)
	switch {
	case strings.Contains(err.Error(), "get credentials") || strings.Contains(err.Error(), "failed to refresh cached credentials"):
		// Checked first: the IMDS lookup's own 403 would read as AccessDenied.
		return fmt.Errorf("objstore: %s: %s %q: no usable AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an instance role): %w",
			s.url, op, key, err)
	case code == "NoSuchBucket":
		return fmt.Errorf("objstore: %s: %s %q: bucket %q does not exist at %s; create it first: %w",
			s.url, op, key, s.bucket, s.where, err)
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "InvalidToken" ||
		code == "ExpiredToken" || code == "InvalidClientTokenId":
		return fmt.Errorf("objstore: %s: %s %q: %s rejected the credentials of access key id %q (%s); check the access key and secret key: %w",
			s.url, op, key, s.where, s.accessKeyID(ctx), code, err)
	case code == "AccessDenied" || status == 403:
		return fmt.Errorf("objstore: %s: %s %q: access to bucket %q denied for access key id %q (wrong secret key, or the key lacks permission): %w",
			s.url, op, key, s.bucket, s.accessKeyID(ctx), err)
	case code == "" && status == 0 && strings.Contains(err.Error(), "credentials"):
		return fmt.Errorf("objstore: %s: %s %q: no usable AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an instance role): %w",
			s.url, op, key, err)
	}
	return fmt.Errorf("objstore: %s: %s %q: %w", s.url, op, key, err)
}

// accessKeyID names the key pair in use, for credential errors.
func (s *s3Store) accessKeyID(ctx context.Context) string {
	if s.creds == nil {
		return "?"
	}
	c, err := s.creds.Retrieve(ctx)
	if err != nil || c.AccessKeyID == "" {
		return "?"
	}
	return c.AccessKeyID
}

// redactedError keeps errors.Is/As working while hiding URL secrets in the
// message (SDK errors quote request URLs).
type redactedError struct{ err error }

func (e redactedError) Error() string { return RedactText(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }

func redactErr(err error) error {
	if err == nil {
		return nil
	}
	var r redactedError
	if errors.As(err, &r) {
		return err
	}
	return redactedError{err}
}
