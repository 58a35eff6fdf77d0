package scenario

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Distributions of a Dist.
const (
	Fixed       = "fixed"       // always Value
	Lognormal   = "lognormal"   // Median·e^(Sigma·N(0,1)): a long tail of slow tasks
	Uniform     = "uniform"     // evenly between Min and Max
	Exponential = "exponential" // mean Mean: the gaps between Poisson arrivals
)

// Dist is a distribution of durations: how long a task runs, or the gap
// between two submissions of a repeated session.
type Dist struct {
	// Kind is Fixed, Lognormal, Uniform or Exponential: the file's
	// "dist".
	Kind string
	// Value is a fixed distribution's duration.
	Value time.Duration
	// Median and Sigma (the standard deviation of the logarithm) shape a
	// lognormal distribution.
	Median time.Duration
	Sigma  float64
	// Min and Max bound a uniform distribution.
	Min, Max time.Duration
	// Mean is an exponential distribution's mean.
	Mean time.Duration
}

// FixedDist is the distribution that is always d.
func FixedDist(d time.Duration) Dist { return Dist{Kind: Fixed, Value: d} }

// maxSample caps what Sample returns, so that adding a sample to a
// virtual time cannot overflow: about 146 years.
const maxSample = time.Duration(1 << 62)

// Sample draws a duration. It is never negative.
func (d Dist) Sample(r *rand.Rand) time.Duration {
	var v float64
	switch d.Kind {
	case Fixed:
		return clampDuration(float64(d.Value))
	case Lognormal:
		v = float64(d.Median) * math.Exp(d.Sigma*r.NormFloat64())
	case Uniform:
		v = float64(d.Min) + float64(d.Max-d.Min)*r.Float64()
	case Exponential:
		v = float64(d.Mean) * r.ExpFloat64()
	}
	return clampDuration(v)
}

func clampDuration(v float64) time.Duration {
	switch {
	case math.IsNaN(v) || v <= 0:
		return 0
	case v >= float64(maxSample):
		return maxSample
	}
	return time.Duration(v)
}

// Validate checks the distribution's parameters. The error names the
// parameter as the file spells it.
func (d Dist) Validate() error {
	switch d.Kind {
	case Fixed:
		if d.Value < 0 {
			return fieldErr("value", "%v is negative", d.Value)
		}
	case Lognormal:
		switch {
		case d.Median <= 0:
			return fieldErr("median", "%v is not positive", d.Median)
		case d.Sigma < 0 || math.IsNaN(d.Sigma) || math.IsInf(d.Sigma, 0) || d.Sigma > maxSigma:
			return fieldErr("sigma", "%v is not between 0 and %v", d.Sigma, maxSigma)
		}
	case Uniform:
		switch {
		case d.Min < 0:
			return fieldErr("min", "%v is negative", d.Min)
		case d.Max < d.Min:
			return fieldErr("max", "%v is below min %v", d.Max, d.Min)
		}
	case Exponential:
		if d.Mean <= 0 {
			return fieldErr("mean", "%v is not positive", d.Mean)
		}
	default:
		return fieldErr("dist", "%q is not a distribution: want fixed, lognormal, uniform or exponential", d.Kind)
	}
	return nil
}

// maxSigma bounds a lognormal's sigma: beyond it nearly every sample is 0
// or the cap, which is no workload.
const maxSigma = 10

// String prints the distribution as a file would write it, on one line.
func (d Dist) String() string {
	switch d.Kind {
	case Fixed:
		return d.Value.String()
	case Lognormal:
		return fmt.Sprintf("{dist: lognormal, median: %v, sigma: %s}", d.Median, strconv.FormatFloat(d.Sigma, 'g', -1, 64))
	case Uniform:
		return fmt.Sprintf("{dist: uniform, min: %v, max: %v}", d.Min, d.Max)
	case Exponential:
		return fmt.Sprintf("{dist: exponential, mean: %v}", d.Mean)
	}
	return fmt.Sprintf("{dist: %q}", d.Kind)
}

// paramError is an error about one field below the one being checked: a
// distribution's parameter, a resource dimension. The caller adds the
// path to where it is.
type paramError struct {
	field string
	err   error
}

func (e *paramError) Error() string { return e.field + ": " + e.err.Error() }
func (e *paramError) Unwrap() error { return e.err }

func fieldErr(field, format string, args ...any) error {
	return &paramError{field: field, err: fmt.Errorf(format, args...)}
}

// splitParam returns the field a paramError names and what is wrong, or
// "" and err.
func splitParam(err error) (string, error) {
	var pe *paramError
	if errors.As(err, &pe) {
		return pe.field, pe.err
	}
	return "", err
}
