package metasnap

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestCheckCapacity(t *testing.T) {
	tests := []struct {
		n       int
		force   bool
		wantErr bool
		warn    bool
	}{
		{0, false, false, false},
		{89, false, false, false},
		{90, false, false, true},
		{99, false, false, true},
		// RisingWave: current_number > MAX_META_SNAPSHOT_NUM, so a backup
		// at 100 is allowed (101 may exist) and one at 101 refused.
		{100, false, false, true},
		{101, false, true, false},
		{101, true, false, true},
		{150, true, false, true},
	}
	for _, tt := range tests {
		var logs bytes.Buffer
		err := checkCapacity(tt.n, tt.force, slog.New(slog.NewTextHandler(&logs, nil)))
		if (err != nil) != tt.wantErr {
			t.Errorf("n=%d force=%v: err = %v", tt.n, tt.force, err)
		}
		if err != nil && !strings.Contains(err.Error(), "--force") {
			t.Errorf("the refusal must say how to proceed: %v", err)
		}
		if got := strings.Contains(logs.String(), "snapshot cap"); got != tt.warn {
			t.Errorf("n=%d force=%v: warned = %v", tt.n, tt.force, got)
		}
	}
}
