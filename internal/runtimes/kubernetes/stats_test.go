package kubernetes

import (
	"testing"
	"time"
)

func TestParseStats(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name    string
		out     string
		cpu     float64
		mem     uint64
		limit   uint64
		pids    uint64
		wantErr bool
	}{
		{
			name: "cgroup v1, half a core over one second",
			out:  "1\n1000000000 100.00\n1500000000 101.00\n10485760\n2097152\n67108864\n8000000000\n3\n",
			cpu:  50, mem: 8 << 20, limit: 64 << 20, pids: 2,
		},
		{
			name: "cgroup v2, no limit is the host's memory",
			out:  "2\n0 5.50\n3000000000 6.50\n4096\n0\nmax\n8000000000\n1\n",
			cpu:  300, mem: 4096, limit: 8_000_000_000, pids: 0,
		},
		{
			name: "cgroup v1 without a limit",
			out:  "1\n7 1.00\n7 2.00\n100\n200\n9223372036854771712\n1024\n2\n",
			cpu:  0, mem: 100, limit: 1024, pids: 1,
		},
		{name: "cut short", out: "1\n1 1.00\n", wantErr: true},
		{name: "not ours", out: "x\n1 1\n2 2\n3\n4\n5\n6\n7\n", wantErr: true},
		{name: "garbage number", out: "2\n1 1.00\n2 2.00\nlots\n0\nmax\n1\n1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseStats(tt.out, at)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseStats = %+v, want an error", s)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.CPUPercent < tt.cpu-0.01 || s.CPUPercent > tt.cpu+0.01 || s.MemoryBytes != tt.mem ||
				s.MemoryLimitBytes != tt.limit || s.Pids != tt.pids || !s.At.Equal(at) {
				t.Errorf("parseStats = %+v, want cpu %.0f mem %d limit %d pids %d", s, tt.cpu, tt.mem, tt.limit, tt.pids)
			}
		})
	}
}
