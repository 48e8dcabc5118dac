package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseCPUProcs(t *testing.T) {
	tests := []struct {
		in      string
		want    []cpuProc
		wantErr string
	}{
		{in: "", want: nil},
		{in: "server=12", want: []cpuProc{{"server", 12}}},
		{in: "server=12, redis=7", want: []cpuProc{{"server", 12}, {"redis", 7}}},
		{in: "server", wantErr: `-cpu "server": want name=pid[,name=pid]`},
		{in: "server=x", wantErr: `-cpu "server=x": want name=pid[,name=pid]`},
		{in: "=3", wantErr: `-cpu "=3": want name=pid[,name=pid]`},
		{in: "server=0", wantErr: `-cpu "server=0": want name=pid[,name=pid]`},
	}
	for _, tt := range tests {
		got, err := parseCPUProcs(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("parseCPUProcs(%q) error = %v, want %s", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("parseCPUProcs(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("parseCPUProcs(%q)[%d] = %v, want %v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

// This process read through /proc agrees with getrusage within /proc's
// resolution once it has spun for 300 ms of CPU.
func TestCPUTimes(t *testing.T) {
	procs := []cpuProc{{"self", os.Getpid()}}
	before, err := cpuTimes(procs)
	if err != nil {
		t.Skip("no /proc here:", err)
	}
	var after []time.Duration
	for deadline := time.Now().Add(30 * time.Second); ; {
		if after, err = cpuTimes(procs); err != nil {
			t.Fatal(err)
		}
		if after[0]-before[0] >= 300*time.Millisecond || time.Now().After(deadline) {
			break
		}
	}
	rusage, proc := after[0]-before[0], after[1]-before[1]
	if rusage < 300*time.Millisecond {
		t.Fatalf("getrusage counted %v of CPU in 30 s of spinning", rusage)
	}
	if d := rusage - proc; d > 5*clockTick || d < -5*clockTick {
		t.Fatalf("getrusage %v and /proc %v disagree", rusage, proc)
	}
	line := cpuLine(procs, before, after, 1000)
	if !strings.HasPrefix(line, "cpu µs/decision: load ") || !strings.Contains(line, " self ") || !strings.Contains(line, " total ") {
		t.Fatalf("cpuLine = %q", line)
	}
}
