// Package testminio runs a real MinIO server on loopback for tests, the demo
// and benchmarks. The binary is the pinned build from `make minio`
// (RWSNAP_MINIO_BIN, else <module root>/.cache/bin/minio).
package testminio

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Server is a running MinIO.
type Server struct {
	Endpoint  string // "127.0.0.1:PORT"
	AccessKey string
	SecretKey string
	Dir       string // data directory

	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// BinaryPath finds the MinIO binary, or says how to build it.
func BinaryPath() (string, error) {
	bin := os.Getenv("RWSNAP_MINIO_BIN")
	if bin == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", fmt.Errorf("testminio: RWSNAP_MINIO_BIN is unset and %w; run `make minio`", err)
		}
		bin = filepath.Join(root, ".cache", "bin", "minio")
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return "", fmt.Errorf("testminio: MinIO binary %s not found: run `make minio` (it builds the pinned MinIO once)", bin)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("testminio: %s is not an executable; run `make minio`", bin)
	}
	return bin, nil
}

// moduleRoot is the nearest directory above the working directory holding
// go.mod (go test runs in the package directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start runs MinIO in a temp directory for the duration of the test. A
// missing binary fails the test: the S3 backend must never go untested.
func Start(t testing.TB) *Server {
	t.Helper()
	srv, stop, err := StartProcess(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Logf("testminio: stopping MinIO: %v", err)
		}
	})
	return srv
}

// StartProcess runs MinIO with its data in dir (created if missing) and
// returns it with a func that stops it. For use outside tests (demo, bench).
func StartProcess(dir string) (*Server, func() error, error) {
	bin, err := BinaryPath()
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("testminio: %w", err)
	}
	// Another process can take a free port between probing and MinIO's
	// bind; try a few times.
	var lastErr error
	for range 3 {
		srv, err := start(bin, dir)
		if err == nil {
			return srv, srv.stop, nil
		}
		lastErr = err
	}
	return nil, nil, lastErr
}

func start(bin, dir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	consolePort, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint:  "127.0.0.1:" + strconv.Itoa(port),
		AccessKey: "rwsnap" + randHex(4),
		// A secret with '/' and '+' like AWS keys, to keep redaction and
		// minio:// parsing honest.
		SecretKey: "s3cr3t/" + randHex(8) + "+x",
		Dir:       dir,
		out:       &syncBuffer{},
		exited:    make(chan struct{}),
	}
	s.cmd = exec.Command(bin, "server", dir,
		"--address", s.Endpoint,
		"--console-address", "127.0.0.1:"+strconv.Itoa(consolePort),
		"--quiet")
	s.cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
	)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	setProcAttr(s.cmd)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("testminio: starting %s: %w", bin, err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitLive(60 * time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitLive(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	// "ready", not just "live": a live server may still answer requests
	// with XMinioServerNotInitialized while its object layer starts.
	url := "http://" + s.Endpoint + "/minio/health/ready"
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("testminio: MinIO exited during startup: %v\n%s", s.cmd.ProcessState, s.out.String())
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("testminio: MinIO at %s not live after %s\n%s", s.Endpoint, timeout, s.out.String())
}

func (s *Server) stop() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	s.cmd.Process.Kill()
	<-s.exited
	return errors.New("MinIO ignored SIGTERM for 10s; killed")
}

// URL is the RisingWave-style URL of a bucket on this server.
func (s *Server) URL(bucket string) string {
	return "minio://" + s.AccessKey + ":" + s.SecretKey + "@" + s.Endpoint + "/" + bucket
}

// Client is a raw S3 client for this server, for tests that go below
// objstore.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     "us-east-1",
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		BaseEndpoint:               aws.String("http://" + s.Endpoint),
		UsePathStyle:               true,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket creates a bucket or fails the test.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if err := s.CreateBucketErr(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

// CreateBucketErr creates a bucket (for use outside tests).
func (s *Server) CreateBucketErr(ctx context.Context, name string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
		if err == nil {
			return nil
		}
		// A loaded machine can still be initialising behind "ready".
		if !strings.Contains(err.Error(), "XMinioServerNotInitialized") || time.Now().After(deadline) {
			return fmt.Errorf("testminio: creating bucket %q: %w", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testminio: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// syncBuffer collects MinIO's output for startup failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<20 { // keep memory bounded on a chatty server
		return len(p), nil
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
