package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run checks the files named in args and returns the exit status.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("doclinks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "the repository's root: links may not leave it, and /PATH starts there")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: doclinks [-root DIR] FILE.md...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	c := newChecker(*root)
	var problems []problem
	for _, f := range fs.Args() {
		p, err := c.check(f)
		if err != nil {
			fmt.Fprintf(stderr, "doclinks: %v\n", err)
			return 2
		}
		problems = append(problems, p...)
	}
	for _, p := range problems {
		fmt.Fprintln(stderr, p)
	}
	if len(problems) > 0 {
		return 1
	}
	return 0
}
