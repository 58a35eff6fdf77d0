package api

// FieldError is an error about one field of a request: a ContainerSpec, or
// the Resources of an update. Libraries say which field in the request's
// own terms; each front end maps the field to its own name for it (the CLI
// to the flag that sets it, an HTTP API to its JSON path), matching the
// error with errors.As. The sentinel the error is about (ErrInvalid,
// ErrUnavailable, ...) is wrapped in Err and still found by errors.Is.
type FieldError struct {
	// Field is the field's path in the request: its JSON names joined by
	// dots, without indexes ("gpus", "resources.memory_bytes", "ports");
	// the message says which element of a list it is about.
	Field string
	// Value is the field's value as the message shows it ("9", `"0.5"`);
	// empty when the message says it or it is not worth repeating.
	Value string
	// Err says what is wrong with the field.
	Err error
}

// Error is "FIELD VALUE: ERR", or "FIELD: ERR" without a value.
func (e *FieldError) Error() string {
	return e.Field + e.valueText() + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *FieldError) Unwrap() error { return e.Err }

// Relabel is the error's text with the field's name replaced by label, as
// a front end shows it ("--gpus 9: ..." for "gpus 9: ...").
func (e *FieldError) Relabel(label string) string {
	return label + e.valueText() + ": " + e.Err.Error()
}

func (e *FieldError) valueText() string {
	if e.Value == "" {
		return ""
	}
	return " " + e.Value
}
