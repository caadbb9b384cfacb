package metastore

import (
	"context"
	"fmt"
	"sort"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ElectionPrefix is the key RisingWave v1.x meta nodes campaign on with the
// etcd election API (src/meta/src/rpc/election/mod.rs META_ELECTION_KEY).
// The election API stores candidates as "__meta_election_/<lease hex>".
const ElectionPrefix = "__meta_election_"

// Leader is a meta node holding the election.
type Leader struct {
	Addr     string // the election value: the meta node's advertised id/address
	Key      string
	LeaseID  int64
	TTL      int64 // seconds left on its lease
	Revision int64 // create revision; the lowest live one is the leader
}

// FindLeader returns the live meta leader, or nil if none. A candidate key
// counts only while its lease is alive: a crashed meta leaves its key until
// the lease expires, after which etcd deletes it.
func FindLeader(ctx context.Context, cli *clientv3.Client) (*Leader, error) {
	resp, err := cli.Get(ctx, ElectionPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read meta election keys %q: %w", ElectionPrefix, err)
	}
	var live []Leader
	for _, kv := range resp.Kvs {
		if kv.Lease == 0 {
			continue // not an election key (no lease): ignore
		}
		ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
		if err != nil {
			return nil, fmt.Errorf("check lease %x of %q: %w", kv.Lease, kv.Key, err)
		}
		if ttl.TTL <= 0 {
			continue
		}
		live = append(live, Leader{Addr: string(kv.Value), Key: string(kv.Key), LeaseID: kv.Lease, TTL: ttl.TTL, Revision: kv.CreateRevision})
	}
	if len(live) == 0 {
		return nil, nil
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Revision < live[j].Revision })
	return &live[0], nil
}
