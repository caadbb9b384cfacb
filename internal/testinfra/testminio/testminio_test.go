package testminio

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestStartPutGet(t *testing.T) {
	srv := Start(t)
	if !strings.HasPrefix(srv.Endpoint, "127.0.0.1:") {
		t.Fatalf("Endpoint = %q", srv.Endpoint)
	}
	want := "minio://" + srv.AccessKey + ":" + srv.SecretKey + "@" + srv.Endpoint + "/bucket1"
	if got := srv.URL("bucket1"); got != want {
		t.Fatalf("URL = %q, want %q", got, want)
	}
	srv.CreateBucket(t, "bucket1")
	ctx := context.Background()
	c := srv.Client()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket1"), Key: aws.String("k"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket1"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	if string(b) != "hello" {
		t.Fatalf("got %q", b)
	}
}

func TestStartProcessStop(t *testing.T) {
	srv, stop, err := StartProcess(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.exited:
	default:
		t.Fatal("MinIO still running after stop")
	}
	if resp, err := http.Get("http://" + srv.Endpoint + "/minio/health/live"); err == nil {
		resp.Body.Close()
		t.Fatal("MinIO still answers after stop")
	}
}

func TestBinaryPathMissing(t *testing.T) {
	t.Setenv("RWSNAP_MINIO_BIN", t.TempDir()+"/nope")
	_, err := BinaryPath()
	if err == nil || !strings.Contains(err.Error(), "make minio") {
		t.Fatalf("err = %v, want a hint to run make minio", err)
	}
}
