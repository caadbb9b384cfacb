package metasnap

import (
	"context"
	"fmt"
	"strings"

	"github.com/rwsnap/rwsnap/hummock"
	"github.com/rwsnap/rwsnap/metastore"
	"github.com/rwsnap/rwsnap/objstore"
)

// Locations are the two object-store places a backup touches.
type Locations struct {
	BackupURL  string // backup_storage_url
	BackupDir  string // backup_storage_directory
	HummockURL string // state_store without "hummock+"
	DataDir    string // data_directory
	// ClusterBackupURL and ClusterBackupDir are the cluster's own backup
	// location (its params, derived as RisingWave does), whatever flags
	// override; "" without a cluster.
	ClusterBackupURL, ClusterBackupDir string
	// OwnLocation: the backup location may be the cluster's configured
	// one (what a live meta node caches), by canonical form; in doubt,
	// true. metaclient.Choose settles it with the live meta node
	// (metasnap.Identify).
	OwnLocation bool
	// NewObjectPrefixStrategy is v2.0's use_new_object_prefix_strategy
	// param (false without it): with HummockURL's scheme it decides where
	// the cluster's SSTs lie (hummock.Prefixed).
	NewObjectPrefixStrategy bool
}

// Overrides are the user's flags; empty fields fall back to the params.
type Overrides struct {
	BackupURL, BackupDir, HummockURL, DataDir string
}

// ResolveLocations combines the cluster's system params with flag
// overrides. Missing backup params are derived as RisingWave v1.7 does
// (config.rs into_init_system_params): url = state_store minus "hummock+",
// dir = data_directory + "/backup".
func ResolveLocations(params map[string]string, o Overrides) (Locations, error) {
	stateStore := params[metastore.ParamStateStore]
	hummockURL, isHummock := strings.CutPrefix(stateStore, "hummock+")
	dataDir := params[metastore.ParamDataDirectory]
	clusterURL := params[metastore.ParamBackupStorageURL]
	clusterDir := params[metastore.ParamBackupStorageDirectory]
	if clusterURL == "" && isHummock {
		clusterURL = hummockURL
	}
	if clusterDir == "" && dataDir != "" {
		clusterDir = dataDir + "/backup"
	}
	l := Locations{BackupURL: o.BackupURL, BackupDir: o.BackupDir, HummockURL: o.HummockURL, DataDir: o.DataDir}
	l.NewObjectPrefixStrategy = params[hummock.ParamNewObjectPrefixStrategy] == "true"
	if l.BackupURL == "" {
		l.BackupURL = clusterURL
	}
	if l.BackupDir == "" {
		l.BackupDir = clusterDir
	}
	if l.HummockURL == "" {
		if !isHummock && stateStore != "" {
			return l, fmt.Errorf("state_store %q is not a hummock+ URL; pass --hummock-storage-url", objstore.RedactText(stateStore))
		}
		l.HummockURL = hummockURL
	}
	if l.DataDir == "" {
		l.DataDir = dataDir
	}
	switch {
	case l.BackupURL == "":
		return l, fmt.Errorf("no backup location: the cluster has no backup_storage_url param and no --backup-storage-url was given")
	case l.BackupURL == "memory" || l.BackupURL == "memory-shared":
		return l, fmt.Errorf("backup_storage_url is %q: RisingWave keeps such snapshots in the meta node's memory, out of rwsnap's reach; pass --backup-storage-url (e.g. s3://bucket or fs:///backups)", l.BackupURL)
	case l.BackupDir == "":
		return l, fmt.Errorf("no backup directory: pass --backup-storage-directory")
	}
	l.ClusterBackupURL, l.ClusterBackupDir = clusterURL, clusterDir
	l.OwnLocation = clusterURL != "" && canonicalVerdict(context.Background(), l.BackupURL, l.BackupDir, clusterURL, clusterDir).Own()
	return l, nil
}

// SameURL compares object-store URLs ignoring credentials, which may differ
// between the cluster's view and the operator's.
func SameURL(a, b string) bool {
	strip := func(u string) string {
		if rest, ok := strings.CutPrefix(u, "minio://"); ok {
			if i := strings.LastIndex(rest, "@"); i >= 0 {
				rest = rest[i+1:]
			}
			return "minio://" + strings.TrimPrefix(strings.TrimPrefix(rest, "http://"), "https://")
		}
		return strings.TrimRight(u, "/")
	}
	return strip(a) == strip(b)
}
