package cgroups

import (
	"testing"

	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/isolators/isolatorstest"
)

func TestConformance(t *testing.T) {
	testutil.RequiresLinux(t)
	isolatorstest.Run(t, func(t *testing.T) isolators.Isolator {
		iso, err := New(Config{Parent: testParent(t)})
		if err != nil {
			t.Fatal(err)
		}
		return iso
	})
}
