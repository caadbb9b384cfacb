package rwsim

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// MetaElectionKey is META_ELECTION_KEY (src/meta/src/rpc/election/mod.rs,
// v1.7.0). The meta node campaigns with etcd's election service
// (election/etcd.rs: client.campaign(META_ELECTION_KEY, id, lease)); the
// server implements it with concurrency.Election, which stores the
// candidate as "__meta_election_/<lease id in hex>", value = the meta
// node's advertise address, attached to the lease.
const MetaElectionKey = "__meta_election_"

// Campaign makes addr the meta leader the way a v1.7 meta node does: grant a
// lease of ttlSeconds kept alive in the background, and campaign on
// MetaElectionKey with it (blocking while another candidate leads). resign
// gives up leadership and revokes the lease, removing the key. The election
// uses cli, not the Cluster's own client, so a test can campaign on another
// etcd than the one seeded (c may be nil).
func (c *Cluster) Campaign(ctx context.Context, cli *clientv3.Client, addr string, ttlSeconds int) (resign func(), err error) {
	if ttlSeconds <= 0 {
		ttlSeconds = 10
	}
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttlSeconds))
	if err != nil {
		return nil, fmt.Errorf("rwsim: meta election lease: %w", err)
	}
	e := concurrency.NewElection(sess, MetaElectionKey)
	if err := e.Campaign(ctx, addr); err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("rwsim: campaign for meta leader %s: %w", addr, err)
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = e.Resign(rctx)
		_ = sess.Close() // revokes the lease
	}, nil
}
