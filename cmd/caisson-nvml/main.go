//go:build cgo && linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
	"github.com/caisson/caisson/gpu/nvml"
)

var version = "dev"

const help = `caisson-nvml %s: Caisson's NVML helper. caisson is a static binary without
cgo, which NVML needs, so it execs this helper and reads the JSON it prints.

Usage:
  caisson-nvml [--backend B] [--sim-dir DIR] COMMAND [FLAGS]

Commands (JSON on stdout, the types of Caisson's package gpu):
  inventory          gpu.Inventory: the GPUs, the MIG devices of those in
                     MIG mode, and their topology. Without an NVIDIA
                     driver: zero devices and a "reason", exit 0.
  stats [--uuid U]...
                     gpu.Stats: utilisation, memory used/total, power (mW),
                     temperature and volatile ECC counts of the GPUs or MIG
                     devices named, or of all GPUs. A counter a device lacks
                     is left out; an unknown UUID is an error.
  probe --uuid U     gpu.Probe: {"uuid","ok","reason"}: whether the GPU or
                     MIG device answers NVML and is fit (no retired pages
                     pending, no failed row remapping: of a MIG device's
                     GPU). Unfit or gone ("reason": "not found") is an
                     answer, not an error: exit 0.
  watch              gpu.Event, one JSON object a line: {"uuid","type":"xid",
                     "xid"}, {"uuid","type":"dbe"} (double-bit ECC error), or
                     {"uuid","type":"unwatched","reason"} for a GPU whose
                     events cannot be watched; an event in a MIG device adds
                     "gpu_instance" (and "compute_instance"). Every XID is
                     reported. Runs until SIGTERM or SIGINT, or until stdin
                     is closed (a parent stops it so; do not give it
                     /dev/null as stdin).
  help               this text.

Flags (before or after the command):
  --backend B        nvml (the driver's libnvidia-ml; default), or a simulated
                     machine: mock:dgxa100, mock:dgxh100, mock:dgxb200
  --sim-dir DIR      a simulated machine's directory: events.jsonl (gpu.Event
                     lines, read by watch and counted as ECC errors by stats),
                     faults.json ({"GPU-…" or "MIG-…": "reason"}: lost
                     devices) and mig.json ({"GPU-…": ["1g.5gb","3g.20gb"]}:
                     the MIG layout, made at every run)

Exit status: 0 done; 1 error, one line "caisson-nvml: MESSAGE" on stderr
(stats, probe and watch fail so without an NVIDIA driver); 2 bad usage;
3 invalid input, such as a simulated MIG layout the GPU cannot hold (one
line on stderr too).
`

// usageError is bad usage: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs the helper and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := command(args, stdin, stdout)
	var usage usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, help, version)
		return 0
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "caisson-nvml: %s\nRun 'caisson-nvml --help' for usage.\n", usage.msg)
		return 2
	}
	fmt.Fprintf(stderr, "caisson-nvml: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	if errors.Is(err, api.ErrInvalid) {
		return gpu.HelperExitInvalid
	}
	return 1
}

// options are the flags, global or of a command.
type options struct {
	backend, simDir string
	uuids           []string
}

// uuidList is a repeatable --uuid.
type uuidList struct{ o *options }

func (l uuidList) String() string { return "" }
func (l uuidList) Set(v string) error {
	l.o.uuids = append(l.o.uuids, v)
	return nil
}

func (o *options) flags(name string, uuid bool) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.backend, "backend", o.backend, "")
	fs.StringVar(&o.simDir, "sim-dir", o.simDir, "")
	if uuid {
		fs.Var(uuidList{o}, "uuid", "")
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err.Error()}
}

func command(args []string, stdin io.Reader, stdout io.Writer) error {
	o := &options{backend: gpu.BackendNVML}
	global := o.flags("caisson-nvml", false)
	if err := parse(global, args); err != nil {
		return err
	}
	rest := global.Args()
	if len(rest) == 0 {
		return usageError{"no command: want inventory, stats, probe or watch"}
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		return flag.ErrHelp
	}
	uuid := name == "stats" || name == "probe"
	fs := o.flags(name, uuid)
	if err := parse(fs, rest); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", name, fs.Arg(0))}
	}
	if !slices.Contains(gpu.Backends, o.backend) {
		return usageError{fmt.Sprintf("--backend %q: want one of %s", o.backend, strings.Join(gpu.Backends, ", "))}
	}
	switch name {
	case "inventory":
		inv, err := nvml.Discover(o.backend, o.simDir)
		if err != nil {
			return err
		}
		return printJSON(stdout, inv)
	case "stats":
		st, err := nvml.Stats(o.backend, o.simDir, o.uuids)
		if err != nil {
			return err
		}
		return printJSON(stdout, st)
	case "probe":
		if len(o.uuids) != 1 {
			return usageError{"probe: want one --uuid"}
		}
		p, err := nvml.Probe(o.backend, o.simDir, o.uuids[0])
		if err != nil {
			return err
		}
		return printJSON(stdout, p)
	case "watch":
		return watch(o, stdin, stdout)
	}
	return usageError{fmt.Sprintf("unknown command %q: want inventory, stats, probe or watch", name)}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// watch prints events until a signal or the end of stdin.
func watch(o *options, stdin io.Reader, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// The parent closes stdin to stop us, or is gone.
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	enc := json.NewEncoder(stdout) // one write per event: a line each
	var werr error
	err := nvml.Watch(ctx, o.backend, o.simDir, func(e gpu.Event) {
		if werr != nil {
			return
		}
		if werr = enc.Encode(e); werr != nil {
			cancel()
		}
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("write event: %w", werr)
	}
	return nil
}
