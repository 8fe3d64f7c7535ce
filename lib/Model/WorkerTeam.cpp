//===- WorkerTeam.cpp - The engine's threads, kept hot between matrices ---===//
#include "WorkerTeam.h"

#include <cassert>
#include <chrono>

#include <immintrin.h>

using namespace vindex;

// The low half of a ticket while a round is being set up: above any chunk
// index, so nothing can be claimed.
static constexpr uint64_t ClosedTicket = 0xffffffffu;

// How long a worker spins for the next round before it sleeps: longer than
// the serial work between two regions of a forward pass (norms, attention
// bookkeeping: tens of microseconds), short enough that an idle session
// gives its cores back almost at once.
static constexpr auto SpinFor = std::chrono::microseconds(2000);

WorkerTeam::WorkerTeam(unsigned Threads) {
  for (unsigned I = 1; I < Threads; ++I)
    Workers.emplace_back([this] { workerLoop(); });
}

WorkerTeam::~WorkerTeam() {
  Stopping.store(true, std::memory_order_release);
  Round.fetch_add(1);
  wakeSleepers();
  for (std::thread &W : Workers)
    W.join();
}

void WorkerTeam::run(size_t N, llvm::function_ref<void(size_t)> Body) {
  if (N == 0)
    return;
  if (Workers.empty() || N == 1) {
    for (size_t I = 0; I < N; ++I)
      Body(I);
    return;
  }
  assert(N < ClosedTicket && "too many chunks for one round");
  uint32_t Next = Round.load(std::memory_order_relaxed) + 1;
  // Close the last round's ticket before Count changes: a worker late from
  // that round may read this round's Count, but its claim then fails on
  // the round number instead of running a chunk that does not exist.
  // Sequentially consistent: these few stores per region cost nothing
  // beside the region, and the order above must hold across threads.
  Ticket.store(uint64_t(Next) << 32 | ClosedTicket);
  Job.store(&Body);
  Count.store(N);
  Done.store(0);
  Ticket.store(uint64_t(Next) << 32);
  Round.store(Next);
  if (Sleepers.load() > 0)
    wakeSleepers();
  drain(Next);
  while (Done.load(std::memory_order_acquire) < N)
    _mm_pause();
}

void WorkerTeam::drain(uint32_t R) {
  uint64_t T = Ticket.load(std::memory_order_acquire);
  for (;;) {
    if (uint32_t(T >> 32) != R)
      return;
    size_t I = size_t(T & 0xffffffffu);
    if (I >= Count.load())
      return;
    if (!Ticket.compare_exchange_weak(T, T + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      continue; // T now holds the current ticket
    // The round cannot end before this chunk is done, so Job is still
    // this round's.
    (*Job.load())(I);
    Done.fetch_add(1);
    T = Ticket.load(std::memory_order_acquire);
  }
}

void WorkerTeam::workerLoop() {
  // The round at construction, not Round's value when this thread first
  // runs: a thread that starts late, after rounds or the destructor's
  // increment, would otherwise wait for a change that already happened.
  uint32_t Seen = 0;
  for (;;) {
    auto Start = std::chrono::steady_clock::now();
    uint32_t R;
    unsigned Spins = 0;
    while ((R = Round.load(std::memory_order_acquire)) == Seen) {
      _mm_pause();
      if (++Spins % 256 == 0 &&
          std::chrono::steady_clock::now() - Start > SpinFor) {
        sleepUntilRoundAfter(Seen);
        Start = std::chrono::steady_clock::now();
      }
    }
    Seen = R;
    if (Stopping.load(std::memory_order_acquire))
      return;
    drain(R);
  }
}

// A condition variable behind a count of sleepers, so that run() takes no
// lock while every worker is spinning. A sleeper counts itself before it reads
// Round, and run() reads Sleepers after it writes Round, both sequentially
// consistent: either the sleeper sees the new round or run() sees the sleeper
// and wakes it.
void WorkerTeam::sleepUntilRoundAfter(uint32_t Seen) {
  std::unique_lock<std::mutex> Lock(SleepMutex);
  Sleepers.fetch_add(1);
  WakeUp.wait(Lock, [&] { return Round.load() != Seen; });
  Sleepers.fetch_sub(1);
}

void WorkerTeam::wakeSleepers() {
  // Taking the lock orders this notify after a sleeper's check of Round.
  { std::lock_guard<std::mutex> Lock(SleepMutex); }
  WakeUp.notify_all();
}
