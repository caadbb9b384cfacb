package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cespare/xxhash/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/hummock/hummockpb"
	"github.com/rwsnap/rwsnap/metastore/metapb"
	"github.com/rwsnap/rwsnap/rwsim"
)

// rawSnapshot is a snapshot object decoded by this test alone, straight
// from the format description (reference §1.3), sharing no code with the
// writer.
type rawSnapshot struct {
	format  uint32
	id      uint64
	keys    [][]byte
	values  [][]byte
	version []byte
	stats   []byte
	lists   [][][]byte // compaction groups .. connections, in order
	params  []byte
	cluster string
	subs    [][]byte
}

func decodeIndependently(t *testing.T, b []byte) rawSnapshot {
	t.Helper()
	if len(b) < 20 {
		t.Fatalf("snapshot of %d bytes", len(b))
	}
	body := b[:len(b)-8]
	if got, want := xxhash.Sum64(body), binary.LittleEndian.Uint64(b[len(b)-8:]); got != want {
		t.Fatalf("checksum %x, stored %x", got, want)
	}
	var s rawSnapshot
	s.format = binary.LittleEndian.Uint32(body)
	s.id = binary.LittleEndian.Uint64(body[4:])
	p := body[12:]
	u32 := func() uint32 {
		v := binary.LittleEndian.Uint32(p)
		p = p[4:]
		return v
	}
	msg := func() []byte {
		n := u32()
		m := p[:n]
		p = p[n:]
		return m
	}
	list := func() [][]byte {
		n := u32()
		out := make([][]byte, n)
		for i := range out {
			out[i] = msg()
		}
		return out
	}
	unwrap := func(m []byte) []byte {
		if len(m) == 0 {
			return []byte{}
		}
		num, typ, n := protowire.ConsumeTag(m)
		if num != 1 || typ != protowire.BytesType {
			t.Fatalf("wrapper message %x", m)
		}
		v, _ := protowire.ConsumeBytes(m[n:])
		return v
	}
	for _, k := range list() {
		s.keys = append(s.keys, unwrap(k))
	}
	for _, v := range list() {
		s.values = append(s.values, unwrap(v))
	}
	s.version = msg()
	s.stats = msg()
	for i := 0; i < 12; i++ {
		s.lists = append(s.lists, list())
	}
	s.params = msg()
	s.cluster = string(unwrap(msg()))
	s.subs = list()
	if len(p) != 0 {
		t.Fatalf("%d trailing bytes", len(p))
	}
	return s
}

// etcdValues lists a prefix at a revision, values in key order.
func etcdValues(t *testing.T, cli *clientv3.Client, prefix string, rev int64) (keys, values [][]byte) {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		keys = append(keys, kv.Key[len(prefix):])
		values = append(values, kv.Value)
	}
	return keys, values
}

func getObject(t *testing.T, f *fixture, key string) []byte {
	t.Helper()
	out, err := f.minio.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("hummock001"), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBackupMetaMatchesEtcdByteForByte(t *testing.T) {
	forEachReadPath(t, func(t *testing.T) {
		f := newFixture(t, rwsim.Options{Seed: 1})
		r := mustRun(t, nil, append([]string{"meta", "backup-meta", "--remarks", "before upgrade", "-o", "json"}, f.etcdArgs()...)...)
		var out struct {
			ID       uint64 `json:"id"`
			Revision int64  `json:"revision"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("json output: %v\n%s", err, r)
		}

		// Manifest, as RisingWave's test scripts read it (field order matters to them).
		manifest := getObject(t, f, "hummock_001/backup/manifest.json")
		re := regexp.MustCompile(`^\{"manifest_id":1,"snapshot_metadata":\[\{"id":(\d+),"hummock_version_id":(\d+),"ssts":\[([\d,]*)\],"max_committed_epoch":(\d+),"safe_epoch":(\d+),"format_version":1,"remarks":"before upgrade"`)
		mm := re.FindStringSubmatch(string(manifest))
		if mm == nil {
			t.Fatalf("manifest shape: %s", manifest)
		}
		want := f.sim.ExpectedVersion()
		if mm[1] != strconv.FormatUint(out.ID, 10) || mm[2] != strconv.FormatUint(want.GetId(), 10) ||
			mm[4] != strconv.FormatUint(want.GetMaxCommittedEpoch(), 10) || mm[5] != strconv.FormatUint(want.GetSafeEpoch(), 10) {
			t.Fatalf("manifest entry %v, expected version id %d epochs %d/%d", mm[1:], want.GetId(), want.GetMaxCommittedEpoch(), want.GetSafeEpoch())
		}
		var ssts []uint64
		for _, s := range strings.Split(mm[3], ",") {
			id, _ := strconv.ParseUint(s, 10, 64)
			ssts = append(ssts, id)
		}
		if wantSSTs := objectIDsByHand(want); !slices.Equal(ssts, wantSSTs) {
			t.Fatalf("ssts %v, want %v", ssts, wantSSTs)
		}

		snap := checkSnapshotMatchesEtcd(t, f, out.ID, out.Revision)
		var v hummockpb.HummockVersion
		if err := proto.Unmarshal(snap.version, &v); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&v, want) {
			t.Fatalf("replayed version differs from rwsim's\n got %v\nwant %v", &v, want)
		}

		// The listing and verification read what was written.
		r = mustRun(t, nil, append([]string{"meta", "list-meta-snapshots"}, f.etcdArgs()...)...)
		if !strings.Contains(r.stdout, "before upgrade") || !strings.Contains(r.stdout, "1 snapshots") {
			t.Errorf("list:\n%s", r)
		}
		r = mustRun(t, nil, append([]string{"meta", "verify-meta-snapshot", "--all", "--check-ssts"}, f.etcdArgs()...)...)
		if !strings.Contains(r.stdout, " ok ") {
			t.Errorf("verify:\n%s", r)
		}
	})
}

// checkSnapshotMatchesEtcd decodes snapshot id independently and checks
// every part against etcd as it was at revision rev.
func checkSnapshotMatchesEtcd(t *testing.T, f *fixture, id uint64, rev int64) rawSnapshot {
	t.Helper()
	snap := decodeIndependently(t, getObject(t, f, fmt.Sprintf("hummock_001/backup/%d.snapshot", id)))
	if snap.format != 1 || snap.id != id {
		t.Fatalf("header %d/%d", snap.format, snap.id)
	}
	keys, values := etcdValues(t, f.cli, "default/", rev)
	if !equalLists(snap.keys, keys) || !equalLists(snap.values, values) {
		t.Fatalf("default_cf differs from etcd at revision %d", rev)
	}
	_, stats := etcdValues(t, f.cli, "cf/hummock_7/", rev)
	if len(stats) != 1 || !bytes.Equal(stats[0], snap.stats) {
		t.Fatal("version stats differ")
	}
	cfs := []string{"cf/hummock_6/", "cf/table_fragments/", "cf/user_info/", "cf/catalog_database/", "cf/catalog_schema/",
		"cf/catalog_table/", "cf/catalog_index/", "cf/catalog_sink/", "cf/catalog_source/", "cf/catalog_view/",
		"cf/catalog_function/", "cf/catalog_connection/"}
	for i, cf := range cfs {
		_, vals := etcdValues(t, f.cli, cf, rev)
		if len(vals) == 0 && cf != "cf/catalog_connection/" {
			t.Errorf("rwsim wrote nothing under %s", cf)
		}
		if !equalLists(snap.lists[i], vals) {
			t.Errorf("%s: snapshot has %d values, etcd %d, or bytes differ", cf, len(snap.lists[i]), len(vals))
		}
	}
	var sp metapb.SystemParams
	if err := proto.Unmarshal(snap.params, &sp); err != nil {
		t.Fatal(err)
	}
	pk, pv := etcdValues(t, f.cli, "cf/system_params/", rev)
	for i := range pk {
		if string(pk[i]) == "state_store" && sp.GetStateStore() != string(pv[i]) {
			t.Errorf("state_store %q, etcd %q", sp.GetStateStore(), pv[i])
		}
		if string(pk[i]) == "barrier_interval_ms" && strconv.FormatUint(uint64(sp.GetBarrierIntervalMs()), 10) != string(pv[i]) {
			t.Errorf("barrier_interval_ms %d, etcd %q", sp.GetBarrierIntervalMs(), pv[i])
		}
	}
	resp, _ := f.cli.Get(context.Background(), "cf/cluster_id", clientv3.WithRev(rev))
	if snap.cluster != string(resp.Kvs[0].Value) {
		t.Errorf("cluster id %q, etcd %q", snap.cluster, resp.Kvs[0].Value)
	}
	if len(snap.subs) != 0 {
		t.Errorf("%d subscriptions", len(snap.subs))
	}
	// What RisingWave leaves out of a snapshot must not be in it.
	for _, cf := range []string{"cf/worker/", "cf/hummock_2/", "cf/hummock_4/"} {
		_, vals := etcdValues(t, f.cli, cf, rev)
		for _, v := range vals {
			for _, l := range snap.lists {
				for _, x := range l {
					if bytes.Equal(x, v) {
						t.Errorf("value of %s leaked into the snapshot", cf)
					}
				}
			}
		}
	}

	return snap
}

// objectIDsByHand walks the version for SST object ids without rwsnap code.
func objectIDsByHand(v *hummockpb.HummockVersion) []uint64 {
	set := map[uint64]bool{}
	for _, g := range v.GetLevels() {
		for _, sl := range g.GetL0().GetSubLevels() {
			for _, s := range sl.GetTableInfos() {
				set[s.GetObjectId()] = true
			}
		}
		for _, l := range g.GetLevels() {
			for _, s := range l.GetTableInfos() {
				set[s.GetObjectId()] = true
			}
		}
	}
	out := make([]uint64, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func equalLists(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
