package trace

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
)

// seedLines adds the first n lines of a trace file to the corpus.
func seedLines(f *testing.F, file string, n int) {
	fh, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		f.Fatal(err)
	}
	defer fh.Close()
	var b strings.Builder
	sc := bufio.NewScanner(fh)
	for i := 0; i < n && sc.Scan(); i++ {
		b.WriteString(sc.Text() + "\n")
	}
	f.Add([]byte(b.String()))
}

// checkRefusal checks a failed read: an *Error for the file, wrapping
// api.ErrInvalid, and no rows.
func checkRefusal(t *testing.T, rows int, err error) {
	var e *Error
	switch {
	case rows != 0:
		t.Fatalf("%d rows came with the error %v", rows, err)
	case !errors.As(err, &e) || e.File != "fuzz.csv" || e.Line < 1:
		t.Fatalf("error %v is not a located *Error for fuzz.csv", err)
	case !errors.Is(err, api.ErrInvalid):
		t.Fatalf("error %v does not wrap api.ErrInvalid", err)
	}
}

// FuzzParsePods feeds ReadPods arbitrary files. It must not panic; what
// it accepts holds the rules ReadPods states, and the core takes every
// pod as a session.
func FuzzParsePods(f *testing.F) {
	seedLines(f, "openb_pod_list_default.csv", 40)
	f.Add([]byte("deletion_time,name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time,gpu_spec\n9,p,1,2,1,500,3,T4|G2\n"))
	f.Add([]byte(podHeader + "\n" + `"p",1,1,1,1000,"",LS,Pending,0,1,` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pods, err := ReadPods("fuzz.csv", strings.NewReader(string(data)))
		if err != nil {
			checkRefusal(t, len(pods), err)
			return
		}
		c := scheduler.New(scheduler.Config{})
		if _, err := c.Step(scheduler.ConsumersSet{Consumers: []scheduler.ConsumerSpec{{Name: "c"}}}); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods {
			switch g := p.GPU(); {
			case p.CPUMilli < 0 || p.MemoryBytes < 0 || g < 0:
				t.Fatalf("pod %s asks for negative resources: %+v", p.Name, p)
			case g > 1000 && g%1000 != 0:
				t.Fatalf("pod %s asks for %d milli-GPUs", p.Name, g)
			case p.CreatedAt < 0 || p.Runtime() < 0:
				t.Fatalf("pod %s: created at %v, runs %v", p.Name, p.CreatedAt, p.Runtime())
			case p.Scheduled && (p.ScheduledAt < p.CreatedAt || p.ScheduledAt > p.DeletedAt):
				t.Fatalf("pod %s scheduled at %v, outside its life", p.Name, p.ScheduledAt)
			}
			if _, err := c.Step(scheduler.SessionSubmitted{Session: p.Session("c")}); err != nil {
				t.Fatalf("the core refuses pod %s: %v", p.Name, err)
			}
		}
	})
}

// FuzzParseNodes feeds ReadNodes arbitrary files. It must not panic;
// what it accepts the core takes as agents.
func FuzzParseNodes(f *testing.F) {
	seedLines(f, "openb_node_list_all_node.csv", 20)
	seedLines(f, "openb_node_list_gpu_node.csv", 20)
	f.Add([]byte("model,gpu,sn,memory_mib,cpu_milli,extra\nT4,2,n,1,1,x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes, err := ReadNodes("fuzz.csv", strings.NewReader(string(data)))
		if err != nil {
			checkRefusal(t, len(nodes), err)
			return
		}
		c := scheduler.New(scheduler.Config{})
		for _, n := range nodes {
			if n.CPUMilli <= 0 || n.MemoryBytes <= 0 || n.GPUs < 0 {
				t.Fatalf("node %s: %+v", n.Name, n)
			}
			if _, err := c.Step(scheduler.AgentAdded{Agent: n.Agent()}); err != nil {
				t.Fatalf("the core refuses node %s: %v", n.Name, err)
			}
		}
	})
}
