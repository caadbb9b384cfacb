package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/rwsnap/rwsnap/internal/testinfra/testminio"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/objstore/objstoretest"
)

var bucketSeq atomic.Int64

func newBucket(t *testing.T, srv *testminio.Server) string {
	name := fmt.Sprintf("rwsnap-test-%03d", bucketSeq.Add(1))
	srv.CreateBucket(t, name)
	return name
}

func openURL(t *testing.T, url string) objstore.Store {
	t.Helper()
	s, err := objstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMinioConformance(t *testing.T) {
	srv := testminio.Start(t)
	objstoretest.RunConformance(t, func(t *testing.T) objstore.Store {
		s := openURL(t, srv.URL(newBucket(t, srv)))
		if s.Scheme() != "minio" {
			t.Fatalf("Scheme() = %q", s.Scheme())
		}
		return s
	})
}

// isolateAWS keeps the developer's ~/.aws and any instance metadata out of
// a test of the s3:// credential chain.
func isolateAWS(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, v := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION", "RWSNAP_S3_ENDPOINT"} {
		t.Setenv(v, "")
	}
}

// s3:// takes credentials from the AWS chain (env here) and an endpoint
// from RWSNAP_S3_ENDPOINT.
func TestS3SchemeConformance(t *testing.T) {
	srv := testminio.Start(t)
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("RWSNAP_S3_ENDPOINT", "http://"+srv.Endpoint)
	objstoretest.RunConformance(t, func(t *testing.T) objstore.Store {
		bucket := newBucket(t, srv)
		s := openURL(t, "s3://"+bucket)
		if s.Scheme() != "s3" || s.String() != "s3://"+bucket {
			t.Fatalf("Scheme() = %q, String() = %q", s.Scheme(), s.String())
		}
		return s
	})
}

// AWS_ENDPOINT_URL works as well as RWSNAP_S3_ENDPOINT.
func TestS3SchemeAWSEndpointEnv(t *testing.T) {
	srv := testminio.Start(t)
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_ENDPOINT_URL", "http://"+srv.Endpoint)
	bucket := newBucket(t, srv)
	s := openURL(t, "s3://"+bucket)
	ctx := context.Background()
	if err := s.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get = %q, %v", got, err)
	}
}

// The claim in DESIGN §3: the pinned MinIO honours If-None-Match: * and
// If-Match on PutObject and answers 412 PreconditionFailed. Checked with raw
// SDK calls, below objstore's error mapping.
func TestMinioHonoursConditionalPut(t *testing.T) {
	srv := testminio.Start(t)
	bucket := newBucket(t, srv)
	c := srv.Client()
	ctx := context.Background()
	put := func(body string, mod func(*s3.PutObjectInput)) (*s3.PutObjectOutput, error) {
		in := &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("manifest.json"), Body: strings.NewReader(body)}
		if mod != nil {
			mod(in)
		}
		return c.PutObject(ctx, in)
	}
	wantPreconditionFailed := func(what string, err error) {
		t.Helper()
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "PreconditionFailed" {
			t.Fatalf("%s: err = %v, want API error PreconditionFailed", what, err)
		}
		if !strings.Contains(err.Error(), "StatusCode: 412") {
			t.Fatalf("%s: err = %v, want HTTP 412", what, err)
		}
	}
	ifNoneMatch := func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }

	first, err := put("v1", ifNoneMatch)
	if err != nil {
		t.Fatalf("If-None-Match: * on a missing object: %v", err)
	}
	_, err = put("v1 again", ifNoneMatch)
	wantPreconditionFailed("If-None-Match: * on an existing object", err)

	second, err := put("v2", func(in *s3.PutObjectInput) { in.IfMatch = first.ETag })
	if err != nil {
		t.Fatalf("If-Match with the current ETag: %v", err)
	}
	_, err = put("v3", func(in *s3.PutObjectInput) { in.IfMatch = first.ETag })
	wantPreconditionFailed("If-Match with a stale ETag", err)
	if _, err := put("v3", func(in *s3.PutObjectInput) { in.IfMatch = second.ETag }); err != nil {
		t.Fatalf("If-Match with the fresh ETag: %v", err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("manifest.json")})
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	if aws.ToInt64(out.ContentLength) != 2 {
		t.Fatalf("object length %d after the conditional puts, want 2 (\"v3\")", aws.ToInt64(out.ContentLength))
	}
}

func TestS3MissingBucket(t *testing.T) {
	srv := testminio.Start(t)
	s := openURL(t, srv.URL("no-such-bucket"))
	ctx := context.Background()
	checks := map[string]error{}
	_, _, checks["Get"] = s.Get(ctx, "k")
	checks["Put"] = s.Put(ctx, "k", []byte("v"))
	_, checks["PutIf"] = s.PutIf(ctx, "k", []byte("v"), "")
	_, checks["List"] = s.List(ctx, "")
	for op, err := range checks {
		if err == nil {
			t.Fatalf("%s on a missing bucket succeeded", op)
		}
		msg := err.Error()
		if !strings.Contains(msg, `bucket "no-such-bucket" does not exist`) || !strings.Contains(msg, "create it first") {
			t.Errorf("%s: error %q does not name the missing bucket", op, msg)
		}
		if errors.Is(err, objstore.ErrNotFound) || errors.Is(err, objstore.ErrPreconditionFailed) {
			t.Errorf("%s: a missing bucket must not look like a missing object or a lost race: %v", op, err)
		}
		if strings.Contains(msg, srv.SecretKey) {
			t.Errorf("%s: error leaks the secret: %s", op, msg)
		}
	}
}

func TestS3WrongCredentials(t *testing.T) {
	srv := testminio.Start(t)
	bucket := newBucket(t, srv)
	ctx := context.Background()
	for name, url := range map[string]string{
		"wrong secret":     "minio://" + srv.AccessKey + ":wrong/Secret+1@" + srv.Endpoint + "/" + bucket,
		"unknown key":      "minio://NOSUCHKEY:wrong/Secret+1@" + srv.Endpoint + "/" + bucket,
		"https-less http:": "minio://" + srv.AccessKey + ":wrong/Secret+1@http://" + srv.Endpoint + "/" + bucket,
	} {
		t.Run(name, func(t *testing.T) {
			s := openURL(t, url)
			if strings.Contains(s.String(), "wrong/Secret") {
				t.Fatalf("String() = %q leaks the secret", s.String())
			}
			ak := strings.TrimPrefix(strings.SplitN(url, ":", 3)[1], "//")
			errs := []error{s.Put(ctx, "k", []byte("v"))}
			_, _, err := s.Get(ctx, "k")
			errs = append(errs, err)
			_, err = s.List(ctx, "")
			errs = append(errs, err)
			for _, err := range errs {
				if err == nil {
					t.Fatal("succeeded with wrong credentials")
				}
				msg := err.Error()
				if strings.Contains(msg, "wrong/Secret") || strings.Contains(msg, "Secret+1") {
					t.Fatalf("error leaks the secret: %s", msg)
				}
				if !strings.Contains(msg, fmt.Sprintf("access key id %q", ak)) {
					t.Fatalf("error does not name access key id %q: %s", ak, msg)
				}
				if errors.Is(err, objstore.ErrNotFound) {
					t.Fatalf("wrong credentials look like a missing object: %s", msg)
				}
			}
		})
	}
}

// Unreachable endpoints fail with an error naming the URL, redacted.
func TestS3Unreachable(t *testing.T) {
	s := openURL(t, "minio://AK:pw0rdXYZ@127.0.0.1:1/bucket")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, _, err := s.Get(ctx, "k")
	if err == nil {
		t.Fatal("Get from a closed port succeeded")
	}
	if strings.Contains(err.Error(), "pw0rdXYZ") || !strings.Contains(err.Error(), "minio://AK:***@127.0.0.1:1/bucket") {
		t.Fatalf("error = %v", err)
	}
}

// Without any credentials in the chain, the error says so, instead of the
// "access denied" the IMDS lookup's own 403 would suggest.
func TestS3MissingCredentials(t *testing.T) {
	srv := testminio.Start(t)
	isolateAWS(t) // no env keys, no profile, IMDS disabled
	t.Setenv("RWSNAP_S3_ENDPOINT", "http://"+srv.Endpoint)
	s := openURL(t, "s3://"+newBucket(t, srv))
	_, _, err := s.Get(context.Background(), "k")
	if err == nil || !strings.Contains(err.Error(), "no usable AWS credentials") || strings.Contains(err.Error(), "denied") {
		t.Fatalf("err = %v", err)
	}
}
