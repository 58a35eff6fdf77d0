package scenario

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/caisson/caisson/internal/yamlnode"
)

// maxQuantity bounds every resource amount (millicores, bytes, ports,
// milli-GPUs), so that sums over a whole cluster cannot overflow.
const maxQuantity = 1 << 53

// Sizes are Kubernetes quantities: a binary suffix (Ki, Mi, Gi, Ti, Pi, Ei)
// or a decimal one (k, M, G, T, P, E). api.ParseSize reads Docker's
// sizes instead, where G is a gibibyte; a scenario follows Kubernetes,
// whose pod specs the traces come from, so it parses its own.
var (
	sizeRE   = regexp.MustCompile(`^([+-]?[0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$`)
	cpuRE    = regexp.MustCompile(`^([+-]?[0-9]+(?:\.[0-9]+)?)(m)?$`)
	sizeMult = map[string]int64{
		"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
		"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
	}
)

// numberOf reads a YAML number exactly: an int or a float scalar. ok is
// false for anything else ("abc", true, a list).
func numberOf(n *yaml.Node) (r *big.Rat, ok bool) {
	if n.Kind != yaml.ScalarNode {
		return nil, false
	}
	switch n.ShortTag() {
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			// Too large for int64: still a number, which the range
			// check refuses.
			r, ok := new(big.Rat).SetString(n.Value)
			return r, ok
		}
		return new(big.Rat).SetInt64(i), true
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false
		}
		// The shortest decimal that reads back as f: 0.1 is 1/10, not
		// the binary fraction nearest to it.
		return new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	}
	return nil, false
}

// scaled returns r·mult as an integer: rounded up when ceil, else only if
// it is whole. exact is false when r·mult has a fraction and ceil is
// false.
func scaled(r *big.Rat, mult int64, ceil bool) (v int64, exact, inRange bool) {
	x := new(big.Rat).Mul(r, new(big.Rat).SetInt64(mult))
	q, m := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	if m.Sign() != 0 {
		if !ceil {
			return 0, false, true
		}
		if x.Sign() > 0 {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() || q.Int64() > maxQuantity || q.Int64() < -maxQuantity {
		return 0, true, false
	}
	return q.Int64(), true, true
}

// cpuMilli reads cores: a number of cores (2, 0.5) or millicores as a
// string ("500m").
func cpuMilli(n *yaml.Node) (int64, error) {
	r, ok := numberOf(n)
	mult := int64(1000)
	if !ok && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		if m := cpuRE.FindStringSubmatch(n.Value); m != nil {
			r, ok = new(big.Rat).SetString(m[1])
			if m[2] == "m" {
				mult = 1
			}
		}
	}
	if !ok {
		return 0, fmt.Errorf("%s is not a number of cores: write 2, 0.5 or 500m", describe(n))
	}
	return checked(r, mult, false, n, "is finer than a millicore")
}

// sizeBytes reads bytes: a whole number or a quantity such as 16Gi.
// Fractions of a byte round up, as in Kubernetes.
func sizeBytes(n *yaml.Node) (int64, error) {
	r, ok := numberOf(n)
	mult := int64(1)
	if !ok && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		if m := sizeRE.FindStringSubmatch(n.Value); m != nil {
			r, ok = new(big.Rat).SetString(m[1])
			mult = sizeMult[m[2]]
		}
	}
	if !ok {
		return 0, fmt.Errorf("%s is not a size: write bytes or a quantity such as 512Mi, 16Gi, 1Ti (binary) or 500M, 2G (decimal)", describe(n))
	}
	return checked(r, mult, true, n, "")
}

// GPU amounts: an agent has whole GPUs, a task a fraction of one GPU or
// whole GPUs, a consumer any amount down to a milli-GPU.
const (
	gpuWhole = iota
	gpuTask
	gpuAny
)

// gpuMilli reads a number of GPUs into milli-GPUs.
func gpuMilli(n *yaml.Node, mode int) (int64, error) {
	r, ok := numberOf(n)
	if !ok {
		return 0, fmt.Errorf("%s is not a number of GPUs", describe(n))
	}
	v, err := checked(r, 1000, false, n, "is finer than a thousandth of a GPU")
	if err != nil {
		return 0, err
	}
	switch {
	case mode == gpuWhole && v%1000 != 0:
		return 0, fmt.Errorf("%s is not a whole number of GPUs", n.Value)
	case mode == gpuTask && v > 1000 && v%1000 != 0:
		return 0, fmt.Errorf("%s GPUs: a task takes a fraction of one GPU (below 1) or whole GPUs", n.Value)
	}
	return v, nil
}

// portCount reads a whole, non-negative number of ports.
func portCount(n *yaml.Node) (int64, error) {
	r, ok := numberOf(n)
	if !ok || !r.IsInt() {
		return 0, fmt.Errorf("%s is not a whole number of ports", describe(n))
	}
	return checked(r, 1, false, n, "")
}

func checked(r *big.Rat, mult int64, ceil bool, n *yaml.Node, inexact string) (int64, error) {
	if r.Sign() < 0 {
		return 0, fmt.Errorf("%s is negative", n.Value)
	}
	v, exact, inRange := scaled(r, mult, ceil)
	switch {
	case !inRange:
		return 0, fmt.Errorf("%s is too large", n.Value)
	case !exact:
		return 0, fmt.Errorf("%s %s", n.Value, inexact)
	}
	return v, nil
}

// describe names a node's value for an error: "abc" quoted, or what kind
// of thing stands where a value should be.
func describe(n *yaml.Node) string { return yamlnode.Describe(n) }
