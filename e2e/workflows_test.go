package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rwsnap/rwsnap/internal/embedetcd"
	"github.com/rwsnap/rwsnap/internal/testinfra/etcdtest"
)

// shBlocks returns the ```sh blocks of a markdown page, in order: the
// commands an operator copies. Other blocks (yaml, text) are not run.
func shBlocks(md string) []string {
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(md, "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```sh":
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// TestWorkflowDocs runs every shell block of every page in docs/workflows,
// verbatim and in order, against `rwsnap playground --keep` (with the env
// line it prints) and an empty etcd for the DR drill: the docs cannot rot.
func TestWorkflowDocs(t *testing.T) {
	pages, err := filepath.Glob("../docs/workflows/*.md")
	if err != nil || len(pages) < 5 {
		t.Fatalf("workflow pages: %v %v", pages, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pg := exec.CommandContext(ctx, rwsnapBin, "playground", "--keep", "--dir", t.TempDir())
	stdout, err := pg.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var pgErr strings.Builder
	pg.Stderr = &pgErr
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		pg.Process.Signal(syscall.SIGINT)
		pg.Wait()
	}()
	var exports string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "export ") {
			exports = l
			break
		}
	}
	if exports == "" {
		t.Fatalf("the playground printed no env line; stderr:\n%s", pgErr.String())
	}
	go func() {
		for sc.Scan() {
		}
	}()
	drill := etcdtest.StartT(t, embedetcd.Config{})
	bin := filepath.Dir(rwsnapBin)
	for _, page := range pages {
		t.Run(filepath.Base(page), func(t *testing.T) {
			md, err := os.ReadFile(page)
			if err != nil {
				t.Fatal(err)
			}
			blocks := shBlocks(string(md))
			if len(blocks) == 0 {
				t.Fatalf("%s has no sh block", page)
			}
			// The env line exactly as printed, then the page's blocks.
			script := "set -euo pipefail\n" + exports + "\n" + strings.Join(blocks, "\n")
			cmd := exec.CommandContext(ctx, "bash", "--norc", "--noprofile", "-c", script)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "DRILL_ETCD="+strings.Join(drill.Endpoints(), ","))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", page, err, out)
			}
			if regexp.MustCompile(`(?m)^rwsnap: `).Match(out) {
				t.Errorf("%s: an error message although every command succeeded:\n%s", page, out)
			}
		})
	}
}

// TestDocsStayInTheRepo: README.md and docs/ link only to files in the
// repository, and those files exist (a clone has nothing else).
func TestDocsStayInTheRepo(t *testing.T) {
	root, _ := filepath.Abs("..")
	pages := []string{filepath.Join(root, "README.md")}
	filepath.Walk(filepath.Join(root, "docs"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".md") {
			pages = append(pages, p)
		}
		return nil
	})
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "../shared") {
			t.Errorf("%s points to ../shared, which a clone does not have", p)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			abs := filepath.Clean(filepath.Join(filepath.Dir(p), target))
			if !strings.HasPrefix(abs, root+string(filepath.Separator)) {
				t.Errorf("%s links outside the repository: %s", p, target)
			} else if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s links to a missing file: %s", p, target)
			}
		}
	}
}
