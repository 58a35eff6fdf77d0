package main

import (
	"strings"

	"github.com/caisson/caisson/api"
)

// fieldFlags maps the fields of a container spec, as the libraries name
// them in an api.FieldError, to the flags of run (and update) that set
// them. The libraries speak of the spec ("gpus 9: this host has 8 GPUs");
// the CLI's user reads about its flags ("--gpus 9: ...").
var fieldFlags = map[string]string{
	"name":                               "--name",
	"rootfs":                             "--rootfs",
	"working_dir":                        "--workdir",
	"env":                                "--env",
	"networks":                           "--network",
	"ports":                              "--publish",
	"bandwidth":                          "--ingress-rate/--egress-rate",
	"volumes":                            "--mount/-v",
	"gpus":                               "--gpus",
	"seccomp":                            "--security-opt",
	"resources.cpus":                     "--cpus",
	"resources.memory_bytes":             "--memory",
	"resources.memory_reservation_bytes": "--memory-reservation",
	"resources.pids_limit":               "--pids-limit",
	"shm_size_bytes":                     "--shm-size",
}

// flagError is an error whose message names flags where the library's
// named fields; it unwraps to the library's error, so exit codes and
// errors.Is see no difference.
type flagError struct {
	msg string
	err error
}

func (e *flagError) Error() string { return e.msg }
func (e *flagError) Unwrap() error { return e.err }

// withFlags returns err with each field a library named in it replaced
// by the flag that sets the field: "gpu: gpus 9: this host has 8 GPUs"
// becomes "gpu: --gpus 9: this host has 8 GPUs". A field that no flag sets
// is left as the library named it. The message is built from err's own:
// each field error's text is found after the one before it, so that two
// alike are each replaced once, where they are.
func withFlags(err error) error {
	if err == nil {
		return nil
	}
	orig := err.Error()
	var b strings.Builder
	var prefixes []string
	pos, changed := 0, false
	for _, fe := range fieldErrors(err) {
		flag, ok := fieldFlags[fe.Field]
		if !ok {
			continue
		}
		changed = true
		lib := fe.Error()
		i := strings.Index(orig[pos:], lib)
		if i < 0 {
			// An error type that does not repeat its cause's text.
			prefixes = append(prefixes, flag)
			continue
		}
		b.WriteString(orig[pos : pos+i])
		b.WriteString(fe.Relabel(flag))
		pos += i + len(lib)
	}
	if !changed {
		return err
	}
	b.WriteString(orig[pos:])
	msg := b.String()
	for _, flag := range prefixes {
		msg = flag + ": " + msg
	}
	return &flagError{msg: msg, err: err}
}

// fieldErrors are the outermost api.FieldErrors in err's tree, in order.
func fieldErrors(err error) []*api.FieldError {
	switch u := err.(type) {
	case *api.FieldError:
		return []*api.FieldError{u}
	case interface{ Unwrap() error }:
		if inner := u.Unwrap(); inner != nil {
			return fieldErrors(inner)
		}
	case interface{ Unwrap() []error }:
		var out []*api.FieldError
		for _, inner := range u.Unwrap() {
			out = append(out, fieldErrors(inner)...)
		}
		return out
	}
	return nil
}
