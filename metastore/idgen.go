package metastore

import (
	"context"
	"encoding/binary"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// AllocBackupID takes the next snapshot id from RisingWave's backup id
// generator (default/backup_id_next_generator) by compare-and-swap: the
// stored value V is an upper bound no meta node has handed out, so rwsnap
// uses V and stores V+1. A meta node that starts later reads V+1 and
// preallocates above it, so ids never collide. Absent key: start at 1.
func AllocBackupID(ctx context.Context, cli *clientv3.Client) (uint64, error) {
	key := string(EtcdKey(CFDefault, []byte(BackupIDGeneratorKey)))
	for attempt := 0; attempt < 16; attempt++ {
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", key, err)
		}
		var id uint64 = 1
		cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(resp.Kvs) > 0 {
			v := resp.Kvs[0].Value
			if len(v) != 8 {
				return 0, fmt.Errorf("%s holds %d bytes, want an 8-byte memcomparable u64", key, len(v))
			}
			id = binary.BigEndian.Uint64(v)
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
		}
		txn, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(MemcomparableU64(id+1)))).Commit()
		if err != nil {
			return 0, fmt.Errorf("update %s: %w", key, err)
		}
		if txn.Succeeded {
			return id, nil
		}
	}
	return 0, fmt.Errorf("allocate a snapshot id: %s changed 16 times in a row; another writer is busy, retry", key)
}
