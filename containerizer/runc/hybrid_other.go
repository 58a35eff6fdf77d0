//go:build !linux

package runc

func hybridWrapper() []string { return nil }
