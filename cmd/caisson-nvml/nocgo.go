//go:build !(cgo && linux)

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "caisson-nvml needs cgo: build it with CGO_ENABLED=1 on Linux")
	os.Exit(1)
}
