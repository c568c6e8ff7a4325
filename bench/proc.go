package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file reads Linux's /proc: which process listens on an address, the
// tree of processes under it, their CPU time and memory. Elsewhere the
// functions fail and the scenarios report no server figures.

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// ListenerPID returns the process listening on addr when addr is on this
// machine: of the processes holding the listening socket (a server's
// children may inherit it), the one whose parent does not.
func ListenerPID(addr string) (int, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		host, port, err2 := net.SplitHostPort(addr)
		if err2 != nil {
			return 0, err
		}
		ips, err2 := net.LookupIP(host)
		if err2 != nil || len(ips) == 0 {
			return 0, err
		}
		ip, _ := netip.AddrFromSlice(ips[0])
		p, _ := strconv.Atoi(port)
		ap = netip.AddrPortFrom(ip.Unmap(), uint16(p))
	}
	if !isLocal(ap.Addr()) {
		return 0, fmt.Errorf("bench: %s is not an address of this machine", addr)
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		listeningInodes(f, ap.Port(), inodes)
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("bench: no process of this machine listens on port %d (or /proc is not readable)", ap.Port())
	}
	holders := map[int]int{} // pid → ppid
	for _, pid := range pids() {
		fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
			if err != nil || !strings.HasPrefix(l, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] {
				st, err := readStat(pid)
				if err == nil {
					holders[pid] = st.ppid
				}
				break
			}
		}
	}
	var roots []int
	for pid, ppid := range holders {
		if _, ok := holders[ppid]; !ok {
			roots = append(roots, pid)
		}
	}
	if len(roots) == 0 {
		return 0, fmt.Errorf("bench: cannot tell which process listens on %s", addr)
	}
	return slices.Min(roots), nil
}

func isLocal(a netip.Addr) bool {
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}

// listeningInodes adds the inodes of the sockets in LISTEN state on port
// listed in f (/proc/net/tcp or tcp6).
func listeningInodes(f string, port uint16, inodes map[string]bool) {
	data, err := os.ReadFile(f)
	if err != nil {
		return
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(data), "\n")[1:] {
		fields := strings.Fields(line)
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
		if len(fields) < 10 || fields[3] != "0A" || !strings.HasSuffix(fields[1], want) {
			continue
		}
		inodes[fields[9]] = true
	}
}

// pids lists the processes of the machine.
func pids() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// procStat holds the fields of /proc/PID/stat we use.
type procStat struct {
	ppid  int
	ticks int64 // utime+stime+cutime+cstime: the process and its reaped children
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// "pid (comm) state ppid …": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, errors.New("bench: malformed /proc stat")
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime..cstime are fields 14..17.
	if len(f) < 15 {
		return procStat{}, errors.New("bench: malformed /proc stat")
	}
	var st procStat
	st.ppid, _ = strconv.Atoi(f[1])
	for _, k := range f[11:15] {
		v, _ := strconv.ParseInt(k, 10, 64)
		st.ticks += v
	}
	return st, nil
}

// tree returns root and its descendants, root first.
func tree(root int) ([]int, error) {
	if _, err := readStat(root); err != nil {
		return nil, fmt.Errorf("bench: server process %d: %w", root, err)
	}
	children := map[int][]int{}
	for _, pid := range pids() {
		if st, err := readStat(pid); err == nil {
			children[st.ppid] = append(children[st.ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// treeSample is the state of a process tree at one moment.
type treeSample struct {
	procs int
	cpu   time.Duration // CPU time of the tree, children reaped included
	rss   int64         // KiB, VmRSS summed
	pss   int64         // KiB, Pss summed (shared pages divided among sharers)
}

// sampleTree reads the CPU time of root's tree, and its memory when mem.
// Processes that end while it reads are skipped.
func sampleTree(root int, mem bool) (treeSample, error) {
	procs, err := tree(root)
	if err != nil {
		return treeSample{}, err
	}
	var s treeSample
	var ticks int64
	for _, pid := range procs {
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		s.procs++
		ticks += st.ticks
		if mem {
			dir := "/proc/" + strconv.Itoa(pid)
			s.rss += kib(filepath.Join(dir, "status"), "VmRSS:")
			s.pss += kib(filepath.Join(dir, "smaps_rollup"), "Pss:")
		}
	}
	s.cpu = time.Duration(ticks) * time.Second / clockTicks
	return s, nil
}

// kib returns the value of the "key  N kB" line of a /proc file, 0 when
// there is none.
func kib(file, key string) int64 {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, key); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

// selfCPU is the CPU time of this process so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Host describes the machine a result was measured on.
type Host struct {
	CPUs     int     `json:"cpus"`
	Model    string  `json:"cpu_model,omitempty"`
	Load1    float64 `json:"load1_at_start"`
	Go       string  `json:"go"`
	Hostname string  `json:"hostname,omitempty"`
}

func hostInfo() Host {
	h := Host{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	h.Hostname, _ = os.Hostname()
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(data)); len(f) > 0 {
			h.Load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return h
}
