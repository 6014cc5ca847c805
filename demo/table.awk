# demo/table.awk - what `make demo` prints on stdout: what the experiment
# does, the table, and what its figures mean. Called by demo/run.sh with
#   names    the allocators, in column order ("ebb glibc ...")
#   work     the directory holding <name>.out, seed's output per allocator
#   idle_s   the idle time before each measurement, in seconds ("1.0")
#   ebb_lib  the libebb.so that was preloaded
# A cell is KiB retained (seed's row lines, field 4); the promise it is held
# to comes from seed as well (field 7), so the rule lives in one place.

# KiB as MiB with one decimal; a value that rounds to zero is shown as 0.0.
function mib(kib,   s) {
    s = sprintf("%.1f", kib / 1024)
    return (s == "-0.0") ? "0.0" : s
}
function is_negative(kib) { return mib(kib) + 0 < 0 }
function describe(name) {
    if (name == "ebb") return ebb_lib ", through LD_PRELOAD"
    if (name == "glibc") return "the C library's own malloc (nothing preloaded)"
    if (name == "jemalloc") return "Debian's libjemalloc2, through LD_PRELOAD"
    if (name == "mimalloc") return "Debian's libmimalloc2.0, through LD_PRELOAD"
    if (name == "tcmalloc") return "Debian's libtcmalloc-minimal4, through LD_PRELOAD"
    return name
}
function most(a, sparse) {  # "-" when that allocator has no such row
    if (sparse) return (a in sp_max) ? mib(sp_max[a]) : "-"
    return (a in sz_max) ? mib(sz_max[a]) : "-"
}

function read_results(   a, file, line, f, key) {
    for (a = 1; a <= n; a++) {
        file = work "/" alloc[a] ".out"
        while ((getline line < file) > 0) {
            split(line, f, "\t")
            if (f[1] != "row") continue
            key = f[2] "/" f[3]
            if (!(key in seen)) { seen[key] = 1; order[++rows] = key; kind[key] = f[2] }
            label[key] = f[3]; live[key] = f[5]; ret[a, key] = f[4]; promise[a, key] = f[7]
        }
        close(file)
    }
}

function name_rows(   r, key, g, name, a) {
    w0 = 24  # "most, round/trap/pinned"
    for (r = 1; r <= rows; r++) {
        key = order[r]; g = kind[key]
        name = (g ~ /^round/) ? "round " substr(g, 6) "  " label[key] : g " " label[key]
        if (g == "sparse") name = name " (live " mib(live[key]) ")"
        rowname[r] = name
        if (length(name) > w0) w0 = length(name)
    }
    w = 10
    for (a = 1; a <= n; a++) if (length(alloc[a]) + 2 > w) w = length(alloc[a]) + 2
}

function explain(   a) {
    printf "How much memory each allocator still holds %s s after a program freed it\n\n", idle_s
    print "Each row is a fresh process that only calls malloc and free. It allocates about"
    print "256 MiB in blocks of one size, writes to every page, frees the blocks, then sleeps"
    printf "%s s without calling the allocator (no malloc_trim), and reads its RSS (resident\n", idle_s
    print "memory). A cell is MiB still resident: RSS after the sleep minus RSS before the row."
    print "0.0 means everything went back to the operating system."
    print ""
    print "Rows:"
    print "  round 1 SIZE   blocks of SIZE, all freed"
    print "  round 2 SIZE   the same, in a process that first malloc'ed and freed one block of"
    print "                 each size up to 8 MiB (glibc then serves blocks below 8 MiB from its"
    print "                 heap instead of mmap, as in any program that once freed such a buffer)"
    print "  trap 1MiB      one 1 MiB block malloc'ed and freed, then 256 blocks of 1 MiB"
    print "  pinned SIZE    as round 2, but one small block allocated after the others stays"
    print "                 live, as in a running program"
    print "  sparse SIZE    100,000 blocks of SIZE; a random 1% stay live (live: their MiB)"
    print "Columns:"
    for (a = 1; a <= n; a++) printf "  %-13s%s\n", alloc[a], describe(alloc[a])
    print "* = more than ebb promises to keep: 1 MiB, or in a sparse row 2 x live + 4 MiB."
    print ""
}

function cell(a, key,   v) {
    if (!((a, key) in ret)) return "- "
    v = ret[a, key]
    if (kind[key] == "sparse") { if (!(a in sp_max) || v > sp_max[a]) sp_max[a] = v }
    else { if (!(a in sz_max) || v > sz_max[a]) sz_max[a] = v }
    counted[a]++
    if (v + 0 <= promise[a, key] + 0) kept[a]++
    else if (alloc[a] == "ebb") broken = broken " " key
    if (is_negative(v)) {
        negatives[a]++
        if (!(a in lowest) || v < lowest[a]) lowest[a] = v
    }
    return mib(v) ((v + 0 > promise[a, key] + 0) ? "*" : " ")
}

function print_rows(   r, a, key) {
    printf "%-" w0 "s", "experiment"
    for (a = 1; a <= n; a++) printf "%" w "s", alloc[a] " "
    printf "\n"
    for (r = 1; r <= rows; r++) {
        key = order[r]
        if (r > 1 && kind[key] != kind[order[r - 1]]) printf "\n"
        printf "%-" w0 "s", rowname[r]
        for (a = 1; a <= n; a++) printf "%" w "s", cell(a, key)
        printf "\n"
    }
    printf "\n%-" w0 "s", "most, round/trap/pinned"
    for (a = 1; a <= n; a++) printf "%" w "s", most(a, 0) " "
    printf "\n%-" w0 "s", "most, sparse rows"
    for (a = 1; a <= n; a++) printf "%" w "s", most(a, 1) " "
    printf "\n\n"
    print "most = the largest cell of the column among those rows."
}

# Printed only when a negative cell is in the table, naming where.
function explain_negatives(   a, where) {
    for (a = 1; a <= n; a++)
        if (a in negatives)
            where = where (where == "" ? "" : "; ") alloc[a] ": " negatives[a] (negatives[a] == 1 ? " row" : " rows") ", down to " mib(lowest[a]) " MiB"
    if (where == "") return
    print "Negative cells (" where "): RSS after the sleep was below RSS"
    print "before the row. None of the row's memory stayed resident, and the allocator also gave"
    print "back memory it held before the row began (from its start-up), or the kernel reclaimed"
    print "pages an allocator had freed lazily (MADV_FREE) before the row."
}

function verdict(   a, line) {
    print ""
    print "Verdict: in how many rows each allocator kept no more than ebb promises"
    for (a = 1; a <= n; a++) {
        if (!(a in counted)) continue
        line = line (line == "" ? "  " : ", ") alloc[a] " " (kept[a] + 0) " of " counted[a]
    }
    print line
    for (a = 1; a <= n; a++) {
        if (alloc[a] != "ebb" || !(a in counted)) continue
        if (kept[a] == counted[a])
            printf "ebb kept its promise in every row: the freed memory went back to the OS within\n%s s, while the program was idle.\n", idle_s
        else
            printf "ebb kept more than it promises in %d of %d rows (marked *):%s\n", counted[a] - kept[a], counted[a], broken
    }
}

BEGIN {
    n = split(names, alloc, " ")
    read_results()
    name_rows()
    explain()
    print_rows()
    explain_negatives()
    verdict()
}
