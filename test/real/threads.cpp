/* SPDX-License-Identifier: MIT */
// test/real/threads.cpp - a threaded C++ program for run.sh to execute with
// and without LD_PRELOAD=libebb.so; the two outputs must be identical.
//
// 8 threads per round, 3 rounds (threads exit between rounds, so their heaps
// are abandoned and reused). Each thread does container-heavy local work
// (vector, map, unordered_map, string) and sends objects to two other
// threads through mutex-protected queues; the receiver checks and destroys
// them, so most objects die in a thread other than the one that made them.
// Large blobs are shared (shared_ptr) by two receivers: whichever drops the
// last reference frees it. Every figure printed is independent of thread
// scheduling: per-thread sums are commutative, printed in thread order.
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

constexpr int kThreads = 8;
constexpr int kRounds = 3;
constexpr int kItemsPerThread = 3000;
constexpr int kProducersPerQueue = 2; // thread t sends to t+1 and t+3
constexpr size_t kBlobStride = 61;     // make_blob sets every 61st byte

struct Rng { // splitmix64: deterministic, seeded per thread and round
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

uint64_t fnv(const void *data, size_t len, uint64_t h = 1469598103934665603ull) {
  const unsigned char *p = static_cast<const unsigned char *>(data);
  for (size_t i = 0; i < len; i++)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::string random_text(Rng &rng, size_t len) {
  std::string s;
  for (size_t i = 0; i < len; i++)
    s.push_back(static_cast<char>('a' + rng.below(26)));
  return s;
}

struct Blob { // large, shared by two receivers
  std::vector<uint8_t> bytes;
  uint64_t hash() const { // every 61st byte: the ones make_blob sets, plus the size
    uint64_t h = fnv(&kBlobStride, sizeof kBlobStride) + bytes.size();
    for (size_t i = 0; i < bytes.size(); i += kBlobStride)
      h = (h ^ bytes[i]) * 1099511628211ull;
    return h;
  }
};

struct Item { // small and medium pieces, owned by one receiver
  std::string name;
  std::vector<uint32_t> numbers;
  std::map<int, std::string> fields;
  uint64_t hash() const {
    uint64_t h = fnv(name.data(), name.size());
    h = fnv(numbers.data(), numbers.size() * sizeof(uint32_t), h);
    for (const auto &kv : fields)
      h = fnv(kv.second.data(), kv.second.size(), h + static_cast<uint64_t>(kv.first));
    return h;
  }
};

struct Message {
  std::unique_ptr<Item> item;       // null in an end-of-stream message
  std::shared_ptr<const Blob> blob; // sometimes set
  bool end = false;
};

class Queue {
 public:
  void push(Message m) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      q_.push_back(std::move(m));
    }
    cv_.notify_one();
  }
  Message pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !q_.empty(); });
    Message m = std::move(q_.front());
    q_.pop_front();
    return m;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Message> q_;
};

std::unique_ptr<Item> make_item(Rng &rng) {
  auto item = std::make_unique<Item>();
  item->name = random_text(rng, 1 + rng.below(200));
  item->numbers.resize(rng.below(400));
  for (auto &n : item->numbers)
    n = static_cast<uint32_t>(rng.next());
  for (int f = 0, nf = static_cast<int>(rng.below(6)); f < nf; f++)
    item->fields[static_cast<int>(rng.below(1000))] = random_text(rng, rng.below(100));
  return item;
}

std::shared_ptr<const Blob> make_blob(Rng &rng) {
  auto blob = std::make_shared<Blob>();
  blob->bytes.resize(64 * 1024 + rng.below(1 << 20)); // 64 KiB .. 1 MiB
  for (size_t i = 0; i < blob->bytes.size(); i += kBlobStride)
    blob->bytes[i] = static_cast<uint8_t>(rng.next());
  return blob;
}

// Container churn that stays in one thread: word counts, an ordered index
// with erasures, and a string that grows by appends.
uint64_t local_work(Rng &rng) {
  std::unordered_map<std::string, int> counts;
  std::map<uint64_t, std::string> index;
  std::string log;
  for (int i = 0; i < 10000; i++) {
    std::string word = random_text(rng, 1 + rng.below(8));
    counts[word]++;
    index.emplace(rng.next() % 50000, word);
    if (i % 3 == 0 && !index.empty())
      index.erase(index.begin());
    if (i % 7 == 0)
      log += word;
  }
  uint64_t h = fnv(log.data(), log.size());
  for (const auto &kv : index)
    h = fnv(kv.second.data(), kv.second.size(), h ^ kv.first);
  uint64_t sum = 0; // unordered_map order is not stable: combine commutatively
  for (const auto &kv : counts)
    sum += fnv(kv.first.data(), kv.first.size()) * static_cast<uint64_t>(kv.second);
  return h ^ sum;
}

struct Result {
  uint64_t local = 0;    // local_work's hash
  uint64_t received = 0; // sum of the hashes of everything received
  uint64_t count = 0;    // items received
};

void produce(int t, Rng &rng, std::vector<Queue> &queues) {
  Queue &a = queues[(t + 1) % kThreads], &b = queues[(t + 3) % kThreads];
  for (int k = 0; k < kItemsPerThread; k++) {
    Message ma, mb;
    ma.item = make_item(rng);
    mb.item = make_item(rng);
    if (k % 50 == 0)
      ma.blob = mb.blob = make_blob(rng);
    a.push(std::move(ma));
    b.push(std::move(mb));
  }
  Message end_a, end_b;
  end_a.end = end_b.end = true;
  a.push(std::move(end_a));
  b.push(std::move(end_b));
}

void consume(Queue &q, Result &r) {
  for (int ends = 0; ends < kProducersPerQueue;) {
    Message m = q.pop();
    if (m.end) {
      ends++;
      continue;
    }
    r.received += m.item->hash() + (m.blob ? m.blob->hash() : 0);
    r.count++;
  } // m (item, maybe the last reference to a blob) is destroyed here
}

void worker(int t, int round, std::vector<Queue> &queues, Result &r) {
  Rng rng{static_cast<uint64_t>(round * 1000 + t)};
  r.local = local_work(rng);
  std::thread sender([&] {
    Rng prng{static_cast<uint64_t>(round * 1000 + t + 500)};
    produce(t, prng, queues);
  });
  consume(queues[t], r);
  sender.join();
}

uint64_t run_round(int round) {
  std::vector<Queue> queues(kThreads);
  std::vector<Result> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++)
    threads.emplace_back(worker, t, round, std::ref(queues), std::ref(results[t]));
  for (auto &th : threads)
    th.join();
  uint64_t total = 0;
  for (int t = 0; t < kThreads; t++) {
    std::printf("round %d thread %d: local %016llx received %llu items, sum %016llx\n", round,
                t, static_cast<unsigned long long>(results[t].local),
                static_cast<unsigned long long>(results[t].count),
                static_cast<unsigned long long>(results[t].received));
    total += results[t].local ^ results[t].received;
  }
  return total;
}

} // namespace

int main() {
  uint64_t total = 0;
  for (int round = 0; round < kRounds; round++)
    total = total * 31 + run_round(round);
  std::printf("total %016llx\n", static_cast<unsigned long long>(total));
  return 0;
}
