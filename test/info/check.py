# SPDX-License-Identifier: MIT
"""test/info/check.py HELPER DIR - runs test/info/malloc_info.c's program and
checks its XML: it parses (xml.etree), has glibc's shape, and its totals are
the statistics read just before it. Exit 0 if all hold, 1 with one line per
failure otherwise."""
import subprocess
import sys
import xml.etree.ElementTree as ET

helper, workdir = sys.argv[1], sys.argv[2]
xml_path, stats_path = workdir + "/malloc_info.xml", workdir + "/malloc_info.stats"
subprocess.run([helper, xml_path, stats_path], check=True)
stats = {k: int(v) for k, v in (line.split() for line in open(stats_path))}
root = ET.parse(xml_path).getroot()
failures = []


def expect(cond, what):
    if not cond:
        failures.append(what)


def total(node, kind):
    found = [t for t in node.findall("total") if t.get("type") == kind]
    expect(len(found) == 1, f"one <total type={kind}> in <{node.tag}>")
    return found[0] if found else ET.Element("total", count="-1", size="-1")


def value(node, tag, kind):
    found = [t for t in node.findall(tag) if t.get("type") == kind]
    expect(len(found) == 1, f"one <{tag} type={kind}> in <{node.tag}>")
    return int(found[0].get("size")) if found else -1


expect(root.tag == "malloc" and root.get("version") == "1", "<malloc version=\"1\">")
heaps = root.findall("heap")
expect(len(heaps) == 1 and heaps[0].get("nr") == "0", "one <heap nr=\"0\">")
free_resident = stats["free_in_pages"] + stats["segment_cache"] + stats["large_cache"]
for node in heaps + [root]:
    rest = total(node, "rest")
    expect(int(rest.get("size")) == free_resident, f"<{node.tag}> rest size {rest.get('size')} == {free_resident}")
    expect(int(total(node, "fast").get("count")) == 0, "fast count 0")
    expect(value(node, "system", "current") == stats["mapped"], f"<{node.tag}> system current == mapped")
    expect(value(node, "system", "max") >= stats["mapped"] - stats["purged_or_untouched"], "system max")
    expect(value(node, "aspace", "total") == stats["mapped"], f"<{node.tag}> aspace total == mapped")
    expect(value(node, "aspace", "mprotect") == stats["mapped"], f"<{node.tag}> aspace mprotect == mapped")
mmap = total(root, "mmap")
expect(int(mmap.get("count")) == stats["large_count"], f"mmap count {mmap.get('count')} == {stats['large_count']}")
expect(int(mmap.get("size")) == stats["large_live"], f"mmap size {mmap.get('size')} == {stats['large_live']}")
sizes = heaps[0].find("sizes") if heaps else None
expect(sizes is not None and len(sizes) >= 20, "a <size> per class in use (50 sizes, over 20 classes, were allocated)")
last_to, free_blocks = 0, 0
for s in sizes if sizes is not None else []:
    lo, hi, tot, cnt = (int(s.get(a)) for a in ("from", "to", "total", "count"))
    expect(lo > last_to and hi >= lo and tot == cnt * hi, f"size {lo}..{hi}: total {tot} count {cnt}")
    last_to, free_blocks = hi, free_blocks + cnt * hi
expect(0 < free_blocks <= stats["free_in_pages"], f"free blocks {free_blocks} <= free_in_pages {stats['free_in_pages']}")
for f in failures:
    print("malloc_info: " + f)
sys.exit(1 if failures else 0)
