package auth

import "strconv"

// LineProblem is a passwd-file line that postie skips or cannot log in
// with. It never holds the line's text: a misplaced colon can put a
// password hash anywhere in it.
type LineProblem struct {
	Line    int    // 1-based
	User    string // the entry's user name; "" for a malformed line
	Problem string
	// Malformed: the line is not an entry at all (the others are entries
	// that cannot be used as they stand).
	Malformed bool
}

func (p LineProblem) String() string {
	s := "line " + strconv.Itoa(p.Line)
	if p.User != "" {
		s += " (user " + strconv.Quote(p.User) + ")"
	}
	return s + ": " + p.Problem
}

// CheckPasswdFile reads data as a passwd-file, as Open and Reload do, and
// returns how many users it defines and the lines they skip or cannot use:
// malformed lines, second entries for a name, and passwords in a scheme
// postie does not know. It is what `postie config check` reports.
func CheckPasswdFile(data []byte) (users int, problems []LineProblem) {
	seen := map[string]bool{}
	for i, l := range parseFile(data).lines {
		switch l.kind {
		case lineMalformed:
			problems = append(problems, LineProblem{Line: i + 1, Problem: l.problem, Malformed: true})
			continue
		case lineEntry:
		default:
			continue
		}
		if seen[l.user] {
			problems = append(problems, LineProblem{Line: i + 1, User: l.user, Problem: "a second entry for this user (skipped: the first wins)"})
			continue
		}
		seen[l.user] = true
		users++
		// An empty password is on purpose: no password login (tokens or
		// client certificates only).
		if _, ok := storedScheme(l.password); l.password != "" && !ok {
			problems = append(problems, LineProblem{Line: i + 1, User: l.user, Problem: "unknown password scheme: the user cannot log in"})
		}
	}
	return users, problems
}
