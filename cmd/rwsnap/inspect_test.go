package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/catalog/catalogpb"
	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/catalogfix"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/metasnap"
	"github.com/rwsnap/rwsnap/objstore"
	"github.com/rwsnap/rwsnap/rwsim"
)

// TestInspectDiffDDLReportNeverShowSecrets plants a credential in every
// place one can hide in a snapshot (source WITH properties and
// definition, sink properties and definition, FORMAT ... ENCODE options of
// a source and a sink, a v2.0 secret's value, a function link, a user's
// password hash, the state store and backup URLs in the system params, the
// remarks) and greps every output format of inspect, --ddl, diff and
// report for each of them; each output also says that it redacted.
func TestInspectDiffDDLReportNeverShowSecrets(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cli := etcdtest.ClientT(t, etcdtest.StartT(t, embedetcd.Config{}))
	hummockURL := "fs://" + filepath.Join(dir, "hummock")
	hs, err := objstore.Open(ctx, hummockURL)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	const minioSecret = "PlantedMinioSecret1"
	// The params name a MinIO with a secret key; the flags below point
	// rwsnap at the real (fs) locations.
	sim, err := rwsim.Seed(ctx, cli, hs, rwsim.Options{Seed: 5, FragmentSize: 1024,
		StateStore: "hummock+minio://hummockadmin:" + minioSecret + "@127.0.0.1:9301/hummock001"})
	if err != nil {
		t.Fatal(err)
	}
	backupURL := "fs://" + filepath.Join(dir, "backup")
	loc := []string{"--backup-storage-url", backupURL, "--backup-storage-directory", "backup"}
	ep := append([]string{"--etcd-endpoints", strings.Join(cli.Endpoints(), ","), "--hummock-storage-url", hummockURL}, loc...)
	const remarkSecret = "RemarkS3cretKey"
	const rotated = "rwsim-kafka-Rotated-Pa55"
	cliRun := func(args ...string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, append([]string{"rwsnap"}, args...), &out, &errb); code != 0 {
			t.Fatalf("rwsnap %v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	cliRun(append([]string{"meta", "backup-meta", "--remarks", "copy of minio://ak:" + remarkSecret + "@10.0.0.1:9000/b"}, ep...)...)

	// The planted snapshot: the first one plus the objects of v1.8-v2.0.
	bs, err := objstore.Open(ctx, backupURL)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	st := metasnap.NewStorage(bs, "backup")
	m, _, err := st.ReadManifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := m.SnapshotMetadata[0]
	b, _, err := bs.Get(ctx, st.SnapshotKey(first.ID))
	if err != nil {
		t.Fatal(err)
	}
	var mv uint32
	for _, r := range sim.Relations() {
		if r.Name == "mv_top_customers_paid" {
			mv = r.ID
		}
	}
	planted, err := catalogfix.Rewrite(b, 2000, func(md *metasnap.ClusterMetadata) {
		catalogfix.Plant(md, mv, 0, 0)
		// A rotated Kafka password: diff must tell, and show neither.
		for i, raw := range md.Sources {
			var s catalogpb.Source
			if err := proto.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			if s.Name == "src_payments" {
				s.WithProperties["properties.sasl.password"] = rotated
				md.Sources[i], _ = proto.Marshal(&s)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	entry := first
	entry.ID = 2000
	if _, err := st.Create(ctx, planted, entry); err != nil {
		t.Fatal(err)
	}

	secrets := []string{rotated, rwsim.KafkaPassword, rwsim.JDBCPassword, sim.UserPasswordHash(), catalogfix.SecretValue,
		catalogfix.RegistryPassword, catalogfix.SinkFormatPassword, catalogfix.FunctionLinkSecret, minioSecret, remarkSecret}
	html := filepath.Join(dir, "report.html")
	outputs := map[string][2]string{}
	for name, args := range map[string][]string{
		"inspect table":   {"meta", "inspect", "2000"},
		"inspect json":    {"meta", "inspect", "2000", "-o", "json"},
		"inspect --ddl":   {"meta", "inspect", "2000", "--ddl"},
		"diff table":      {"meta", "diff", "1001", "2000"},
		"diff json":       {"meta", "diff", "1001", "2000", "-o", "json"},
		"report --html -": {"meta", "report", "--html", "-", "--keep-last", "1"},
		"report --html":   {"meta", "report", "--html", html},
	} {
		o, e := cliRun(append(args, ep...)...)
		outputs[name] = [2]string{o, e}
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	outputs["report file"] = [2]string{string(page), ""}
	for name, o := range outputs {
		for _, s := range secrets {
			if strings.Contains(o[0], s) || strings.Contains(o[1], s) {
				t.Errorf("%s shows the credential %q", name, s)
			}
		}
	}
	// Each says that it redacted.
	if !strings.Contains(outputs["inspect table"][0], "Redacted (credentials replaced by [REDACTED])") {
		t.Error("inspect does not say it redacted")
	}
	var doc struct {
		Snapshot struct{ Redacted []string }
	}
	json.Unmarshal([]byte(outputs["inspect json"][0]), &doc)
	for _, want := range []string{"source src_payments: properties.sasl.password", "sink sink_top_customers_pg: jdbc.url",
		"secret kafka_password: value", "function fn_remote_score: link", "user analyst: password hash",
		"source src_with_secret: format_encode.schema.registry.password", "sink sink_with_format_secret: format_encode.schema.registry.password",
		"param state_store: credentials in the URL"} {
		found := false
		for _, r := range doc.Snapshot.Redacted {
			found = found || r == want
		}
		if !found {
			t.Errorf("-o json redacted list lacks %q: %v", want, doc.Snapshot.Redacted)
		}
	}
	if !strings.Contains(outputs["inspect --ddl"][0], "Credentials are redacted and replaced by psql variables") {
		t.Error("--ddl does not say it redacted")
	}
	if !strings.Contains(outputs["diff table"][0], "(a redacted credential changed)") ||
		!strings.Contains(outputs["diff json"][0], `"properties"`) {
		t.Errorf("diff does not tell that the Kafka password was rotated:\n%s", outputs["diff table"][0])
	}
	if !strings.Contains(outputs["report file"][0], "***@10.0.0.1:9000") {
		t.Error("the report's remarks lost the redaction marker")
	}
}

// TestInspectBadInput: usage errors exit 2, runtime errors 1, each naming
// what failed, through the CLI.
func TestInspectBadInput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cli := etcdtest.ClientT(t, etcdtest.StartT(t, embedetcd.Config{}))
	storage := "fs://" + filepath.Join(dir, "s")
	hs, err := objstore.Open(ctx, storage)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	if _, err := rwsim.Seed(ctx, cli, hs, rwsim.Options{Seed: 6, FragmentSize: 512, StateStore: "hummock+" + storage}); err != nil {
		t.Fatal(err)
	}
	ep := []string{"--etcd-endpoints", strings.Join(cli.Endpoints(), ",")}
	rw := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"rwsnap"}, append(args, ep...)...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := rw("meta", "backup-meta"); code != 0 {
		t.Fatal(out)
	}
	if code, out := rw("meta", "backup-meta"); code != 0 {
		t.Fatal(out)
	}
	// Corrupt 1002.
	key := "hummock_001/backup/1002.snapshot"
	b, _, err := hs.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x55
	hs.Put(ctx, key, b)
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"meta", "inspect"}, 2, []string{"one snapshot id"}},
		{[]string{"meta", "inspect", "x1"}, 2, []string{`"x1" is not a number`}},
		{[]string{"meta", "inspect", "1001", "-o", "yaml"}, 2, []string{"--output"}},
		{[]string{"meta", "diff", "1001"}, 2, []string{"two snapshot ids"}},
		{[]string{"meta", "report"}, 2, []string{"html"}},
		{[]string{"meta", "report", "--html", "x.html", "--keep-last", "-1"}, 2, []string{"--keep-last"}},
		{[]string{"meta", "inspect", "77"}, 1, []string{"snapshot 77 is not in the manifest", "1001, 1002"}},
		{[]string{"meta", "inspect", "1002"}, 1, []string{"corrupt snapshot 1002", "hummock_001/backup/1002.snapshot", "checksum"}},
		{[]string{"meta", "diff", "1001", "1002"}, 1, []string{"corrupt snapshot 1002"}},
		{[]string{"meta", "inspect", "1001"}, 0, []string{"Snapshot", "1001", "mv_paid_orders"}},
	} {
		code, out := rw(tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s", tc.args, code, tc.code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
	// The report still renders, and names the corrupt snapshot.
	html := filepath.Join(dir, "r.html")
	if code, out := rw("meta", "report", "--html", html); code != 0 {
		t.Fatal(out)
	}
	page, _ := os.ReadFile(html)
	if !strings.Contains(string(page), "snapshot 1002 cannot be verified") {
		t.Error("the report does not name the corrupt snapshot")
	}
}
