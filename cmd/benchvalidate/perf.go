package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The estimate from CPU shares: while wrk loads a Go server of ours,
// perf samples that process's CPU time (cpu-clock, 999 Hz, call chains
// by frame pointers). A sample whose call chain holds handlerFrame was
// taken inside the server's Handler, one that holds gcFrame in a GC
// background worker; all the rest of a request (net/http reading the
// request and writing the answer, the syscalls, the scheduler) is the
// same work for two servers that answer the same bytes. The GC's work is
// not: it grows with what the Handler allocates and with the live heap
// it keeps (validate's caches), so it counts as the server's own. With S
// a server's share of samples inside its Handler or its GC, the
// throughput ratio num/den of two such servers, on a CPU that both use
// fully, is then (1 - S_num)/(1 - S_den): shares of one process's own
// samples, which the machine's other load does not shift as it shifts
// req/s.
//
// Behind nginx, perf records all the processes a request passes through
// on CPU 0 (the nginx master and worker, the model, the authorizer), and
// S is the authorizer's samples inside its Handler among all of theirs.

// handlerFrame marks a sample taken inside the Handler: net/http calls
// the Server's Handler from it, and it appears in the call chains of
// both the custom handler and the bare server.
const handlerFrame = "net/http.serverHandler.ServeHTTP"

// gcFrame marks a sample of a GC background worker, outside every
// Handler though the Handler's allocations cause it.
const gcFrame = "runtime.gcBgMarkWorker"

// cpuSamples counts samples in a recording: all those of the processes
// recorded, and those of the first inside its Handler and of its GC.
type cpuSamples struct{ all, handler, gc int }

// handlerShare is the share of samples inside the Handler.
func (c cpuSamples) handlerShare() float64 { return float64(c.handler) / float64(c.all) }

// ownShare is S, the share of samples inside the Handler or the GC.
func (c cpuSamples) ownShare() float64 { return float64(c.handler+c.gc) / float64(c.all) }

func (c cpuSamples) gcShare() float64 { return float64(c.gc) / float64(c.all) }

// shareEstimate is the estimate of num/den req/s from their shares.
func shareEstimate(num, den cpuSamples) float64 {
	return (1 - num.ownShare()) / (1 - den.ownShare())
}

// parseSamples counts the samples of pids in r, the output of
// `perf script -F pid,ip,sym`: each sample a line with its pid, then its
// call chain a frame a line, indented, and a blank line. The handler and
// GC samples counted are those of pids[0].
func parseSamples(r io.Reader, pids []int) (cpuSamples, error) {
	var c cpuSamples
	pid := 0 // the sample's, or 0 for one of another process
	inHandler, inGC := false, false
	end := func() {
		if pid != 0 {
			c.all++
			if pid == pids[0] && inHandler {
				c.handler++
			}
			if pid == pids[0] && inGC {
				c.gc++
			}
		}
		pid, inHandler, inGC = 0, false, false
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			end()
		case line[0] != '\t':
			// A sample's first line: its pid, padded with spaces to
			// perf's width (" 4301").
			end()
			p, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				return cpuSamples{}, fmt.Errorf("perf script: a sample starts with %q, not a pid", line)
			}
			if slices.Contains(pids, p) {
				pid = p
			}
		default:
			// "\t          28e5ce net/http.serverHandler.ServeHTTP"
			_, sym, _ := strings.Cut(strings.TrimSpace(line), " ")
			inHandler = inHandler || sym == handlerFrame
			inGC = inGC || sym == gcFrame
		}
	}
	end()
	if err := sc.Err(); err != nil {
		return cpuSamples{}, err
	}
	if c.all == 0 {
		return c, fmt.Errorf("perf recorded no sample of pids %v", pids)
	}
	if c.handler == 0 {
		// A server's Handler takes a share of every run.
		return c, fmt.Errorf("no sample of pid %d is inside %s: has the binary lost its symbols?", pids[0], handlerFrame)
	}
	return c, nil
}

// profiler records the CPU profiles of the runs; err, once set, is why
// the estimate is skipped, and later recordings are not made.
type profiler struct {
	dir string
	n   int
	err error
}

func newProfiler(dir string) *profiler {
	p := &profiler{dir: dir}
	if _, err := exec.LookPath("perf"); err != nil {
		p.err = errors.New("perf not found (apt-get install linux-perf)")
	}
	return p
}

// recording is one perf record under way.
type recording struct {
	pids []int
	file string
	cmd  *exec.Cmd
	out  strings.Builder
	err  error // why the recording failed, if it did
}

// record starts recording the samples of pids for d, nil when the
// profiler has failed before. perf runs on CPU 1, with wrk, away from the
// servers.
func (p *profiler) record(pids []int, d time.Duration) *recording {
	if p.err != nil {
		return nil
	}
	p.n++
	rec := &recording{pids: pids, file: filepath.Join(p.dir, fmt.Sprintf("perf-%d.data", p.n))}
	list := make([]string, len(pids))
	for i, pid := range pids {
		list[i] = strconv.Itoa(pid)
	}
	rec.cmd = exec.Command("taskset", "-c", "1", "perf", "record", "-e", "cpu-clock", "-F", "999", "-g",
		"-p", strings.Join(list, ","), "-o", rec.file, "--", "sleep", strconv.FormatFloat(d.Seconds(), 'f', -1, 64))
	rec.cmd.Stdout, rec.cmd.Stderr = &rec.out, &rec.out
	if err := rec.cmd.Start(); err != nil {
		p.err = fmt.Errorf("perf record: %w", err)
		return nil
	}
	return rec
}

// wait waits for rec to end. A failed recording keeps its error: that
// run has no estimate, the others still do.
func (p *profiler) wait(rec *recording) *recording {
	if rec == nil {
		return nil
	}
	if err := rec.cmd.Wait(); err != nil {
		out := strings.ReplaceAll(strings.TrimSpace(rec.out.String()), "\n", "; ")
		rec.err = fmt.Errorf("perf record: %v: %s", err, out)
	}
	return rec
}

// samples reads rec's file with perf script.
func (p *profiler) samples(rec *recording) (cpuSamples, error) {
	if rec.err != nil {
		return cpuSamples{}, rec.err
	}
	cmd := exec.Command("perf", "script", "-i", rec.file, "-F", "pid,ip,sym")
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		return cpuSamples{}, err
	}
	if err := cmd.Start(); err != nil {
		return cpuSamples{}, fmt.Errorf("perf script: %w", err)
	}
	c, perr := parseSamples(out, rec.pids)
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return cpuSamples{}, fmt.Errorf("perf script: %w", err)
	}
	os.Remove(rec.file)
	if perr != nil {
		return cpuSamples{}, perr // a partial count has no estimate
	}
	return c, nil
}
