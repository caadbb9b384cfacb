package timetravel

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// PsqlOptions describes a psql session pinned to an epoch.
type PsqlOptions struct {
	// Path of the psql binary; "" finds psql on $PATH.
	Path string
	// ConnString is passed to psql as its database argument (a postgres://
	// URL or key=value string); "" lets psql use the PG* variables. A
	// password in a URL moves to PGPASSWORD so it does not show in ps.
	ConnString string
	Epoch      uint64
	// Banner is \echo-ed after the epoch is set, one line per element.
	Banner []string
	// Prompt prefixes psql's prompts, e.g. "[as of 10:00 UTC] ".
	Prompt string
	// Args go to psql after the connection, e.g. -f script.sql.
	Args                   []string
	Stdin                  io.Reader
	Stdout, Stderr         io.Writer
	Env                    []string // base environment; nil = os.Environ()
	UserPsqlrc             string   // startup file to run first; "" = $PSQLRC or ~/.psqlrc if present
	SkipUserPsqlrc         bool
	KeepRCForDebuggingOnly bool // leave the temporary file (tests)
}

// PsqlExitError is psql's own failure; Code is its exit status.
type PsqlExitError struct{ Code int }

func (e *PsqlExitError) Error() string { return fmt.Sprintf("psql exited with status %d", e.Code) }

// psqlQuote makes s one single-quoted psql backslash-command argument, in
// which psql processes C escapes and ” is a quote.
func psqlQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "'", "''")
	s = strings.NewReplacer("\n", `\n`, "\r", "").Replace(s)
	return "'" + s + "'"
}

// Psqlrc renders the temporary startup file: the user's own startup file,
// then the SET (quietly, keeping the user's QUIET), the banner and prompts.
func Psqlrc(o PsqlOptions, userRC string) string {
	var b strings.Builder
	b.WriteString("-- written by rwsnap timetravel psql; removed when psql exits\n")
	if userRC != "" {
		fmt.Fprintf(&b, "\\i %s\n", psqlQuote(userRC))
	}
	b.WriteString("\\set rwsnap_saved_quiet :QUIET\n\\set QUIET on\n")
	fmt.Fprintf(&b, "%s;\n", SetEpochSQL(o.Epoch))
	fmt.Fprintf(&b, "\\set rwsnap_query_epoch %d\n", o.Epoch)
	b.WriteString("\\set QUIET :rwsnap_saved_quiet\n\\unset rwsnap_saved_quiet\n")
	for _, line := range o.Banner {
		fmt.Fprintf(&b, "\\echo %s\n", psqlQuote(line))
	}
	if o.Prompt != "" {
		fmt.Fprintf(&b, "\\set PROMPT1 %s :PROMPT1\n\\set PROMPT2 %s :PROMPT2\n", psqlQuote(o.Prompt), psqlQuote(o.Prompt))
	}
	return b.String()
}

// userPsqlrc finds the startup file psql would have read without rwsnap.
func userPsqlrc(env []string) string {
	get := func(k string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if v, ok := strings.CutPrefix(env[i], k+"="); ok {
				return v
			}
		}
		return ""
	}
	p := get("PSQLRC")
	if p == "" {
		if home := get("HOME"); home != "" {
			p = filepath.Join(home, ".psqlrc")
		}
	}
	if p == "" {
		return ""
	}
	if st, err := os.Stat(p); err != nil || st.IsDir() {
		return ""
	}
	return p
}

// RunPsql runs psql with a temporary PSQLRC that pins the session to
// o.Epoch, waits for it, and removes the file. psql is deliberately not
// tied to a context: Ctrl-C belongs to psql (it cancels the running query),
// not to rwsnap.
func RunPsql(o PsqlOptions) error {
	bin := o.Path
	if bin == "" {
		bin = "psql"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return fmt.Errorf("find psql (install postgresql-client, or pass --psql PATH): %w", err)
	}
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	userRC := o.UserPsqlrc
	if userRC == "" && !o.SkipUserPsqlrc {
		userRC = userPsqlrc(env)
	}
	f, err := os.CreateTemp("", "rwsnap-psqlrc-*")
	if err != nil {
		return fmt.Errorf("create temporary psqlrc: %w", err)
	}
	if !o.KeepRCForDebuggingOnly {
		defer os.Remove(f.Name())
	}
	if _, err := f.WriteString(Psqlrc(o, userRC)); err != nil {
		f.Close()
		return fmt.Errorf("write temporary psqlrc %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write temporary psqlrc %s: %w", f.Name(), err)
	}
	var args []string
	if o.ConnString != "" {
		conn, password := splitPassword(o.ConnString)
		args = append(args, conn)
		if password != "" {
			env = append(env, "PGPASSWORD="+password)
		}
	}
	args = append(args, o.Args...)
	cmd := exec.Command(path, args...)
	cmd.Env = append(env, "PSQLRC="+f.Name())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			return &PsqlExitError{Code: ee.ExitCode()}
		}
		return fmt.Errorf("run %s: %w", path, err)
	}
	return nil
}

// splitPassword removes the password from a postgres:// URL.
func splitPassword(conn string) (string, string) {
	if !strings.HasPrefix(conn, "postgres://") && !strings.HasPrefix(conn, "postgresql://") {
		return conn, ""
	}
	u, err := url.Parse(conn)
	if err != nil || u.User == nil {
		return conn, ""
	}
	pw, ok := u.User.Password()
	if !ok {
		return conn, ""
	}
	u.User = url.User(u.User.Username())
	return u.String(), pw
}
