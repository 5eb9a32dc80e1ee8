// A Go program for the compatibility suite: goroutines, channels, sync.WaitGroup, a mutex and
// encoding/json, with output that does not depend on scheduling. Reads a JSON document of
// texts from stdin, counts words in one goroutine per text, and prints the totals as JSON.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
)

type input struct {
	Texts []string `json:"texts"`
	Top   int      `json:"top"`
}

type wordCount struct {
	Word  string `json:"word"`
	Count int    `json:"count"`
}

type result struct {
	Texts   int         `json:"texts"`
	Words   int         `json:"words"`
	Top     []wordCount `json:"top"`
	Squares []int       `json:"squares"`
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	counts := make(chan map[string]int, len(in.Texts))
	var wg sync.WaitGroup
	for _, t := range in.Texts {
		wg.Add(1)
		go func(t string) {
			defer wg.Done()
			m := map[string]int{}
			for _, w := range strings.Fields(strings.ToLower(t)) {
				m[strings.Trim(w, ".,;:!?")]++
			}
			counts <- m
		}(t)
	}
	go func() { wg.Wait(); close(counts) }()
	total := map[string]int{}
	words := 0
	for m := range counts {
		for w, n := range m {
			total[w] += n
			words += n
		}
	}
	top := make([]wordCount, 0, len(total))
	for w, n := range total {
		top = append(top, wordCount{w, n})
	}
	sort.Slice(top, func(i, j int) bool {
		if top[i].Count != top[j].Count {
			return top[i].Count > top[j].Count
		}
		return top[i].Word < top[j].Word
	})
	if len(top) > in.Top {
		top = top[:in.Top]
	}

	// A pipeline of unbuffered channels: a generator, four squarers sharing one channel, and a
	// mutex-protected collector.
	nums := make(chan int)
	go func() {
		for i := 1; i <= 200; i++ {
			nums <- i
		}
		close(nums)
	}()
	var mu sync.Mutex
	var squares []int
	var workers sync.WaitGroup
	for w := 0; w < 4; w++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for n := range nums {
				mu.Lock()
				squares = append(squares, n*n)
				mu.Unlock()
			}
		}()
	}
	workers.Wait()
	sort.Ints(squares)

	out, _ := json.MarshalIndent(result{len(in.Texts), words, top, squares[len(squares)-5:]}, "", "  ")
	fmt.Println(string(out))
	fmt.Fprintf(os.Stderr, "done: %d distinct words\n", len(total))
	os.Exit(3)
}
