package rwversion

import (
	"fmt"
	"strconv"
	"strings"
)

// Releases are the RisingWave releases that ran on an etcd meta store: the
// release tags v1.0.0 through v2.0.7 of github.com/risingwavelabs/risingwave
// (`git tag`; pre-release tags such as v1.10.0-rc.1 and v2.0.0-rc.1 left
// out, and there is no v2.0.0 release: the v2.0 line starts at v2.0.1). Each
// is the workspace version in that tag's Cargo.toml, which is RW_VERSION,
// what v1.10+ write into manifest entries' rw_version. v2.1.0 removed etcd
// (risingwave#18621).
var Releases = []string{
	"1.0.0",
	"1.1.0", "1.1.1", "1.1.2", "1.1.3", "1.1.4",
	"1.2.0",
	"1.3.0",
	"1.4.0",
	"1.5.0", "1.5.1", "1.5.2", "1.5.3", "1.5.4",
	"1.6.0", "1.6.1",
	"1.7.0", "1.7.1", "1.7.2", "1.7.3", "1.7.4",
	"1.8.0", "1.8.1", "1.8.2",
	"1.9.0", "1.9.1", "1.9.2",
	"1.10.0", "1.10.1", "1.10.2",
	"2.0.1", "2.0.2", "2.0.3", "2.0.4", "2.0.5", "2.0.6", "2.0.7",
}

// Pin is what --rw-version names: a release line, and the exact release
// when a patch was given ("" when only the line is known).
type Pin struct {
	Line    Version
	Release string // e.g. "1.10.2"; "" for "1.10"
}

func (p Pin) String() string {
	if p.Release != "" {
		return "v" + p.Release
	}
	return p.Line.String()
}

// Accepted says, for messages, what ParsePin takes.
func Accepted() string {
	lines := make([]string, len(Lines))
	for i, l := range Lines {
		lines[i] = fmt.Sprintf("%d.%d", l.Major, l.Minor)
	}
	return fmt.Sprintf("a release line (%s) or one of the releases %s (a leading v is allowed, e.g. v1.10.2)",
		strings.Join(lines, ", "), strings.Join(Releases, ", "))
}

// ParsePin reads a user's --rw-version (flag, RWSNAP_RW_VERSION, config
// file) strictly: "MAJOR.MINOR" naming an etcd-era line, or
// "MAJOR.MINOR.PATCH" naming a release in Releases, each optionally with a
// leading "v". Anything else (pre-releases, patches that were never
// released, v2.1+, spaces, signs) is refused with what is accepted.
func ParsePin(s string) (Pin, error) {
	body := strings.TrimPrefix(s, "v")
	parts := strings.Split(body, ".")
	bad := func(why string) (Pin, error) {
		return Pin{}, fmt.Errorf("RisingWave version %q %s; rwsnap accepts %s", s, why, Accepted())
	}
	if len(parts) < 2 || len(parts) > 3 {
		return bad("is not MAJOR.MINOR or MAJOR.MINOR.PATCH")
	}
	nums := make([]int, len(parts))
	for i, p := range parts {
		if p == "" || len(p) > 4 || strings.Trim(p, "0123456789") != "" || (len(p) > 1 && p[0] == '0') {
			return bad("is not MAJOR.MINOR or MAJOR.MINOR.PATCH in decimal")
		}
		nums[i], _ = strconv.Atoi(p)
	}
	line := Version{nums[0], nums[1]}
	if !Known(line) {
		if Newest.Less(line) {
			return bad(fmt.Sprintf("is after the etcd era (%s–%s; v2.1 removed etcd, risingwave#18621)", Oldest, Newest))
		}
		return bad(fmt.Sprintf("is before v1.0, outside the etcd era rwsnap supports (%s–%s)", Oldest, Newest))
	}
	if len(parts) == 2 {
		return Pin{Line: line}, nil
	}
	rel := strings.Join(parts, ".")
	for _, r := range Releases {
		if r == rel {
			return Pin{Line: line, Release: rel}, nil
		}
	}
	return bad(fmt.Sprintf("is not a RisingWave release of the %s line", line))
}

// CompareReleases orders two release strings of Releases' form
// (MAJOR.MINOR.PATCH, anything after a '-' or '+' ignored); ok is false
// when either does not parse.
func CompareReleases(a, b string) (cmp int, ok bool) {
	pa, oka := triple(a)
	pb, okb := triple(b)
	if !oka || !okb {
		return 0, false
	}
	for i := range pa {
		if pa[i] != pb[i] {
			if pa[i] < pb[i] {
				return -1, true
			}
			return 1, true
		}
	}
	return 0, true
}

func triple(s string) ([3]int, bool) {
	m := versionRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil || m[3] == "" {
		return [3]int{}, false
	}
	var out [3]int
	for i := range out {
		n, err := strconv.Atoi(m[i+1])
		if err != nil {
			return out, false
		}
		out[i] = n
	}
	return out, true
}
