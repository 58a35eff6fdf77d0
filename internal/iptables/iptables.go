// Package iptables reads and edits iptables rules through the iptables
// binaries (legacy or nft-backed), for what CNI plugins leave behind.
package iptables

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Families are the iptables binaries rules live in.
var Families = []string{"iptables", "ip6tables"}

// Rule is one "-A CHAIN ..." line of FAMILY-save, split into arguments.
type Rule struct {
	Family, Table string
	Args          []string // starting with "-A", CHAIN
}

// Chain returns the chain the rule is in.
func (r Rule) Chain() string { return r.Args[1] }

// Target returns the rule's -j target.
func (r Rule) Target() string {
	for i := range r.Args {
		if r.Args[i] == "-j" && i+1 < len(r.Args) {
			return r.Args[i+1]
		}
	}
	return ""
}

// Save returns a family's chains ("table/chain") and rules; nothing when
// the family's binary is not installed.
func Save(ctx context.Context, family string) (map[string]bool, []Rule, error) {
	bin, err := exec.LookPath(family + "-save")
	if err != nil {
		return nil, nil, nil
	}
	out, err := exec.CommandContext(ctx, bin).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("%s-save: %w", family, err)
	}
	chains := map[string]bool{}
	var rules []Rule
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			chains[table+"/"+strings.Fields(line[1:])[0]] = true
		case strings.HasPrefix(line, "-A "):
			rules = append(rules, Rule{Family: family, Table: table, Args: SplitRule(line)})
		}
	}
	return chains, rules, sc.Err()
}

// SplitRule splits an iptables-save rule into arguments, honouring double
// quotes and backslash escapes inside them.
func SplitRule(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inQuote && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			inQuote, have = !inQuote, true
		case c == ' ' && !inQuote:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// Delete removes one rule.
func Delete(ctx context.Context, r Rule) error {
	args := append([]string{"-w", "-t", r.Table, "-D"}, r.Args[1:]...)
	if out, err := exec.CommandContext(ctx, r.Family, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", r.Family, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// DeleteChain flushes and deletes a chain.
func DeleteChain(ctx context.Context, family, table, chain string) error {
	for _, op := range []string{"-F", "-X"} {
		if out, err := exec.CommandContext(ctx, family, "-w", "-t", table, op, chain).CombinedOutput(); err != nil {
			return fmt.Errorf("%s -t %s %s %s: %v: %s", family, table, op, chain, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// shared are chains CNI plugins share between containers; they are never
// removed for one container.
func shared(chain string) bool {
	return strings.HasPrefix(chain, "CNI-HOSTPORT-") || chain == "CNI-FORWARD" || chain == "CNI-ADMIN"
}

// RemoveTagged deletes every rule whose comment contains tag, and the
// per-container CNI-* chains those rules jump to (when nothing else jumps
// to them). It returns how many rules and chains it removed.
func RemoveTagged(ctx context.Context, tag string) (int, error) {
	removed := 0
	var errs []error
	for _, fam := range Families {
		_, rules, err := Save(ctx, fam)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tagged := map[string]bool{} // table/chain the tagged rules jump to
		for _, r := range rules {
			if t := r.Target(); strings.Contains(strings.Join(r.Args, " "), tag) && strings.HasPrefix(t, "CNI-") && !shared(t) {
				tagged[r.Table+"/"+t] = true
			}
		}
		jumpedFromElsewhere := map[string]bool{}
		for _, r := range rules {
			key := r.Table + "/" + r.Target()
			if tagged[key] && !strings.Contains(strings.Join(r.Args, " "), tag) {
				jumpedFromElsewhere[key] = true
			}
		}
		for _, r := range rules {
			if !strings.Contains(strings.Join(r.Args, " "), tag) || tagged[r.Table+"/"+r.Chain()] {
				continue // not ours, or inside a chain that goes whole
			}
			if err := Delete(ctx, r); err != nil {
				errs = append(errs, err)
				continue
			}
			removed++
		}
		for key := range tagged {
			if jumpedFromElsewhere[key] {
				continue
			}
			table, chain, _ := strings.Cut(key, "/")
			if err := DeleteChain(ctx, fam, table, chain); err != nil {
				errs = append(errs, err)
				continue
			}
			removed++
		}
	}
	return removed, errors.Join(errs...)
}
