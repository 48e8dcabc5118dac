package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuProc is a process whose CPU time is reported per decision (-cpu).
type cpuProc struct {
	name string
	pid  int
}

// parseCPUProcs reads -cpu: "name=pid,name=pid".
func parseCPUProcs(s string) ([]cpuProc, error) {
	var procs []cpuProc
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		name, p, ok := strings.Cut(f, "=")
		pid, err := strconv.Atoi(p)
		if !ok || name == "" || err != nil || pid <= 0 {
			return nil, fmt.Errorf("-cpu %q: want name=pid[,name=pid]", f)
		}
		procs = append(procs, cpuProc{name, pid})
	}
	return procs, nil
}

// clockTick is Linux's USER_HZ, the unit of /proc/PID/stat's CPU times
// (100 on every architecture Go supports).
const clockTick = 10 * time.Millisecond

// cpuTimes returns the user+system CPU time of this process, then of each
// of procs.
func cpuTimes(procs []cpuProc) ([]time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return nil, fmt.Errorf("getrusage: %w", err)
	}
	out := []time.Duration{time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	for _, p := range procs {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/stat")
		if err != nil {
			return nil, fmt.Errorf("cpu of %s: %w", p.name, err)
		}
		// The command name (field 2) may hold spaces; fields 14 and 15
		// (utime, stime) count from after its closing parenthesis.
		i := strings.LastIndexByte(string(b), ')')
		var f []string
		if i >= 0 {
			f = strings.Fields(string(b[i+1:]))
		}
		if len(f) < 13 {
			return nil, fmt.Errorf("cpu of %s: unexpected /proc/%d/stat", p.name, p.pid)
		}
		u, err1 := strconv.ParseInt(f[11], 10, 64)
		s, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("cpu of %s: unexpected /proc/%d/stat", p.name, p.pid)
		}
		out = append(out, time.Duration(u+s)*clockTick)
	}
	return out, nil
}

// cpuLine formats the CPU each process spent per decision between two
// cpuTimes samples: "cpu µs/decision: load 30.1  server 47.2  total 77.3".
func cpuLine(procs []cpuProc, before, after []time.Duration, decisions int) string {
	if decisions <= 0 || len(before) != len(after) || len(before) != len(procs)+1 {
		return ""
	}
	var b strings.Builder
	b.WriteString("cpu µs/decision:")
	var total float64
	for i, d := range after {
		us := float64(d-before[i]) / float64(time.Microsecond) / float64(decisions)
		total += us
		name := "load"
		if i > 0 {
			name = procs[i-1].name
		}
		fmt.Fprintf(&b, " %s %.1f ", name, us)
	}
	fmt.Fprintf(&b, " total %.1f", total)
	return b.String()
}
