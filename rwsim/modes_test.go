package rwsim_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/rwsim"
	"github.com/rwsnap/rwsnap/rwversion"
)

// TestModes: every simulated release writes a delta log that its own
// release's rules replay to rwsim's bookkeeping (an independent statement
// of the result), through the seed, live commits and a new checkpoint, and
// shows what that release has: subscriptions and change logs from v1.9,
// state_table_info and no member lists from v1.10, secrets and v2.0's params
// from v2.0.
func TestModes(t *testing.T) {
	for _, mode := range rwsim.Modes {
		t.Run(mode.String(), func(t *testing.T) {
			e := seed(t, rwsim.Options{Seed: 7, RWVersion: mode}, nil)
			ctx := context.Background()
			e.checkReplay(t)
			for range 3 {
				e.clock.Add(3e9)
				if err := e.sim.Advance(ctx); err != nil {
					t.Fatal(err)
				}
			}
			v := e.checkReplay(t)
			all := e.all(t)
			has := func(cf string) bool { return len(withPrefix(all, metastore.Prefix(cf))) > 0 }
			if got := has(metastore.CFSubscription); got != mode.AtLeast(rwversion.V1_9) {
				t.Errorf("subscriptions present %v", got)
			}
			if got := len(v.GetTableChangeLogs()) > 0; got != mode.AtLeast(rwversion.V1_9) {
				t.Errorf("change logs present %v", got)
			}
			if mode.AtLeast(rwversion.V1_9) && len(v.GetTableChangeLogs()) != 1 {
				t.Errorf("change logs of %d tables, want 1 (the other subscription was dropped)", len(v.GetTableChangeLogs()))
			}
			if got := len(v.GetStateTableInfo()) > 0; got != mode.AtLeast(rwversion.V1_10) {
				t.Errorf("state_table_info present %v", got)
			}
			members := false
			for _, l := range v.GetLevels() {
				members = members || len(l.GetMemberTableIds()) > 0
			}
			if members == mode.AtLeast(rwversion.V1_10) {
				t.Errorf("member_table_ids present %v", members)
			}
			if got := has(metastore.CFSecret); got != mode.AtLeast(rwversion.V2_0) {
				t.Errorf("secrets present %v", got)
			}
			_, v20 := all[string(metastore.EtcdKey(metastore.CFSystemParams, []byte("license_key")))]
			if v20 != mode.AtLeast(rwversion.V2_0) {
				t.Errorf("v2.0 params present %v", v20)
			}
			// Another line's rules give another version (the modes differ
			// where they should), except where the rules agree.
			base, deltas := e.readLog(t)
			// (v1.2 and v1.5 seed v1.7's layout: their differences are the
			// meta node's, tested in rwsim/metanode.)
			other := rwversion.V1_7
			if !mode.AtLeast(rwversion.V1_9) {
				other = rwversion.V1_10
			}
			got, err := hummock.Replay(base, deltas, rwversion.For(other).Replay)
			if err == nil && proto.Equal(got, v) {
				t.Errorf("%s's log replays the same under %s rules: the mode exercises nothing of its own", mode, other)
			}
		})
	}
}
