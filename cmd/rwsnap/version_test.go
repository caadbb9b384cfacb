package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"rwsnap", "--version"}, &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	// The go toolchain and the revision (or why there is none) come
	// from the build info, not a hard-coded string.
	if s := out.String(); !strings.HasPrefix(s, "rwsnap dev, revision ") || !strings.Contains(s, ", go1.") {
		t.Fatalf("--version: %q", s)
	}
	old := version
	version = "v1.2.3"
	defer func() { version = old }()
	out.Reset()
	run(context.Background(), []string{"rwsnap", "--version"}, &out, &out)
	if !strings.HasPrefix(out.String(), "rwsnap v1.2.3, ") {
		t.Fatalf("--version with a release version: %q", out.String())
	}
}

// TestCompletionBash sources `rwsnap completion bash` in a real bash and
// completes as a user pressing TAB would.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash not found")
	}
	var script, errb bytes.Buffer
	if code := run(context.Background(), []string{"rwsnap", "completion", "bash"}, &script, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	f := filepath.Join(t.TempDir(), "rwsnap.bash")
	if err := os.WriteFile(f, script.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		words string // the last word is being completed
		want  string
	}{
		{"rwsnap me", "meta"},
		{"rwsnap meta ba", "backup-meta backup-data"},
		{"rwsnap meta backup-meta --etcd-end", "--etcd-endpoints"},
		{"rwsnap --log-level debug meta list-meta-snapshots --backup-storage-d", "--backup-storage-directory"},
		{"rwsnap params s", "set"},
		{"rwsnap completion ", ""},
		{"rwsnap timetravel psql --sn", "--snapshot"},
	} {
		words := strings.Fields(tt.words)
		if strings.HasSuffix(tt.words, " ") {
			words = append(words, "")
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := ". " + f + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" + strconv.Itoa(len(words)-1) + "\n_rwsnap\necho \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tt.words, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("complete %q = %q, want %q", tt.words, got, tt.want)
		}
	}
	var zsh bytes.Buffer
	if code := run(context.Background(), []string{"rwsnap", "completion", "zsh"}, &zsh, &errb); code != 0 ||
		!strings.HasPrefix(zsh.String(), "#compdef rwsnap\n") || !strings.Contains(zsh.String(), "bashcompinit") {
		t.Fatalf("zsh: exit %d\n%s", code, zsh.String())
	}
	if code := run(context.Background(), []string{"rwsnap", "completion", "fish"}, &zsh, &errb); code != 2 {
		t.Fatalf("fish: exit %d", code)
	}
}
