package metasnap

import (
	"strings"
	"testing"
)

func TestResolveLocations(t *testing.T) {
	minio := "minio://hummockadmin:hummockadmin@127.0.0.1:9301/hummock001"
	tests := []struct {
		name    string
		params  map[string]string
		o       Overrides
		want    Locations
		wantErr string
	}{
		{"derived like v1.7", map[string]string{"state_store": "hummock+" + minio, "data_directory": "hummock_001"}, Overrides{},
			Locations{BackupURL: minio, BackupDir: "hummock_001/backup", HummockURL: minio, DataDir: "hummock_001", OwnLocation: true}, ""},
		{"explicit params", map[string]string{"state_store": "hummock+" + minio, "data_directory": "hummock_001", "backup_storage_url": "s3://b", "backup_storage_directory": "backup"}, Overrides{},
			Locations{BackupURL: "s3://b", BackupDir: "backup", HummockURL: minio, DataDir: "hummock_001", OwnLocation: true}, ""},
		{"other location by flag", map[string]string{"state_store": "hummock+" + minio, "data_directory": "d", "backup_storage_url": "s3://b", "backup_storage_directory": "backup"}, Overrides{BackupURL: "fs:///x"},
			Locations{BackupURL: "fs:///x", BackupDir: "backup", HummockURL: minio, DataDir: "d"}, ""},
		{"same bucket, other credentials", map[string]string{"state_store": "hummock+" + minio, "data_directory": "d", "backup_storage_url": minio, "backup_storage_directory": "backup"},
			Overrides{BackupURL: "minio://other:secret@http://127.0.0.1:9301/hummock001"},
			Locations{BackupURL: "minio://other:secret@http://127.0.0.1:9301/hummock001", BackupDir: "backup", HummockURL: minio, DataDir: "d", OwnLocation: true}, ""},
		{"memory refused", map[string]string{"state_store": "hummock+memory", "data_directory": "d", "backup_storage_url": "memory"}, Overrides{}, Locations{}, "out of rwsnap's reach"},
		{"no params, no flags", map[string]string{}, Overrides{}, Locations{}, "no backup location"},
		{"non-hummock state store", map[string]string{"state_store": "in-memory", "backup_storage_url": "s3://b", "backup_storage_directory": "x"}, Overrides{}, Locations{}, "not a hummock+ URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveLocations(tt.params, tt.o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.ClusterBackupURL, tt.want.ClusterBackupDir = got.ClusterBackupURL, got.ClusterBackupDir
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
