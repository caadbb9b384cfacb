package e2e

import (
	"strings"
	"testing"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/faultpoint"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
	"github.com/rwsnap/rwsnap/rwsim"
)

// TestRestoreDryRunSaysWhatARunWouldDo: a dry run on a half-restored
// target says a real run resumes it (not "the target etcd is empty"); it
// names the checkpoint a run would replace and where that is saved; a real
// run prints its plan before writing.
func TestRestoreDryRunSaysWhatARunWouldDo(t *testing.T) {
	f := newFixture(t, rwsim.Options{Seed: 62})
	id, _ := backupID(t, f)
	target := etcdtest.StartT(t, embedetcd.Config{})
	ep := strings.Join(target.Endpoints(), ",")
	args := f.restoreArgs(id, ep)

	// The cluster's own hummock location holds its checkpoint: a restore
	// there replaces it, after saving it beside the snapshots.
	r := mustRun(t, nil, append(args, "--dry-run")...)
	for _, want := range []string{"an existing hummock checkpoint, hummock_001/checkpoint/0 at ", "would be replaced (unless identical) after being saved in hummock_001/backup/replaced-checkpoints/ at ",
		"dry run: the target etcd is empty and every check passed; nothing was written"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run on an empty target lacks %q:\n%s", want, r)
		}
	}

	// Killed after its second batch: a half-restored target.
	wasKilled(t, "restore.after-batch#2", run(t, []string{faultpoint.Env + "=restore.after-batch#2"}, args...))
	r = mustRun(t, nil, append(args, "--dry-run")...)
	if !strings.Contains(r.stdout, "holds an interrupted restore of this same snapshot") || !strings.Contains(r.stdout, "a real run resumes and completes it") ||
		strings.Contains(r.stdout, "the target etcd is empty") {
		t.Fatalf("dry run on a half-restored target:\n%s", r)
	}
	// The real run prints its plan before it writes, then completes.
	r = mustRun(t, nil, args...)
	plan, write, done := strings.Index(r.stdout, "restore snapshot "), strings.Index(r.stdout, "resuming an interrupted restore"), strings.Index(r.stdout, "restore succeeded")
	if plan < 0 || write < plan || done < write || strings.Count(r.stdout, "restore snapshot ") != 1 {
		t.Fatalf("the plan is not printed once, before writing:\n%s", r)
	}
}
