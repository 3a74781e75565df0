package dev.beamllama.model.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Scheduling and KV-block bookkeeping, without a model: the engine loop is played by the test. */
class SchedulerTest {
  private static Sequence sequence(String id, int promptLength, int maxNewTokens) {
    int[] prompt = new int[promptLength];
    GenerationRequest request = new GenerationRequest(id, prompt, SamplingParams.greedy(maxNewTokens));
    return new Sequence(request, promptLength + maxNewTokens, TokenListener.NONE);
  }

  private static ScheduledChunk chunk(Sequence seq, int start, int length) {
    return new ScheduledChunk(seq, start, length, start + length == seq.length());
  }

  /** A sampled token, as the engine adds it: pending while its step runs, then known. */
  private static void draw(Sequence seq, int token) {
    seq.resolve(seq.appendPending(0), token);
  }

  /** What the engine does after the model ran: count the computed tokens, append a sampled one. */
  private static void complete(List<ScheduledChunk> chunks) {
    for (ScheduledChunk chunk : chunks) {
      chunk.sequence().markComputed(chunk.length());
      if (chunk.samples()) {
        draw(chunk.sequence(), 1);
      }
    }
  }

  @Test
  void admitsUpToTheSequenceLimitAndChunksLongPrompts() {
    Scheduler scheduler = new Scheduler(2, 10, new BlockManager(100, 4));
    Sequence a = sequence("a", 25, 5);
    Sequence b = sequence("b", 3, 5);
    Sequence c = sequence("c", 3, 5);
    scheduler.add(a);
    scheduler.add(b);
    scheduler.add(c);
    List<ScheduledChunk> first = scheduler.schedule();
    assertEquals(List.of(chunk(a, 0, 10)), first, "the prompt is cut at the token budget");
    assertFalse(first.get(0).samples());
    complete(first);
    List<ScheduledChunk> second = scheduler.schedule();
    assertEquals(List.of(chunk(a, 10, 10)), second);
    complete(second);
    List<ScheduledChunk> third = scheduler.schedule();
    assertEquals(List.of(chunk(a, 20, 5), chunk(b, 0, 3)), third, "b fills the rest of the budget");
    assertTrue(third.get(0).samples());
    complete(third);
    List<ScheduledChunk> fourth = scheduler.schedule();
    assertEquals(2, fourth.size(), "c waits: two sequences is the limit");
    assertEquals(1, scheduler.waitingCount());
  }

  @Test
  void aFinishedSequenceIsReplacedAtTheNextStep() {
    BlockManager blocks = new BlockManager(100, 4);
    Scheduler scheduler = new Scheduler(1, 64, blocks);
    Sequence a = sequence("a", 4, 1);
    Sequence b = sequence("b", 4, 1);
    scheduler.add(a);
    scheduler.add(b);
    complete(scheduler.schedule());
    scheduler.finish(a);
    assertEquals(100, blocks.freeBlocks());
    assertEquals(List.of(chunk(b, 0, 4)), scheduler.schedule());
  }

  @Test
  void runningOutOfBlocksPreemptsTheLatestAdmittedAndRecomputesIt() {
    BlockManager blocks = new BlockManager(4, 4);
    Scheduler scheduler = new Scheduler(4, 64, blocks);
    Sequence a = sequence("a", 8, 8);
    Sequence b = sequence("b", 8, 8);
    scheduler.add(a);
    scheduler.add(b);
    complete(scheduler.schedule()); // both prompts: 2 blocks each, cache full
    assertEquals(0, blocks.freeBlocks());
    List<ScheduledChunk> next = scheduler.schedule(); // a needs a third block: b is preempted
    assertEquals(List.of(chunk(a, 8, 1)), next);
    assertEquals(1, scheduler.preemptions());
    assertEquals(0, b.computed(), "b's cache is gone and will be recomputed");
    assertEquals(9, b.length(), "b keeps its generated token");
    assertEquals(0, b.blockTable().size());
    complete(next);
    scheduler.finish(a);
    assertEquals(List.of(chunk(b, 0, 9)), scheduler.schedule(), "b comes back first, prompt and generated token recomputed");
  }

  @Test
  void freedBlocksAreReused() {
    BlockManager blocks = new BlockManager(3, 4);
    Sequence a = sequence("a", 12, 1);
    blocks.allocate(a, 12);
    List<Integer> first = List.of(a.blockTable().get(0), a.blockTable().get(1), a.blockTable().get(2));
    blocks.free(a);
    Sequence b = sequence("b", 12, 1);
    blocks.allocate(b, 12);
    assertEquals(new HashSet<>(first), Set.of(b.blockTable().get(0), b.blockTable().get(1), b.blockTable().get(2)));
    assertEquals(0, blocks.freeBlocks());
  }

  @Test
  void tenThousandRandomRequestsLeakNoBlockAndShareNone() {
    Random random = new Random(42);
    BlockManager blocks = new BlockManager(64, 8);
    Scheduler scheduler = new Scheduler(16, 96, blocks);
    List<Sequence> live = new ArrayList<>();
    int submitted = 0;
    int finished = 0;
    while (finished < 10_000) {
      while (submitted < 10_000 && live.size() < 40 && random.nextInt(3) > 0) {
        Sequence seq = sequence("r" + submitted++, 1 + random.nextInt(120), 1 + random.nextInt(60));
        live.add(seq);
        scheduler.add(seq);
      }
      List<ScheduledChunk> chunks = scheduler.schedule();
      assertFalse(chunks.isEmpty(), "work but nothing scheduled: the scheduler is stuck");
      Set<Integer> owned = new HashSet<>();
      int held = 0;
      for (Sequence seq : live) {
        for (int i = 0; i < seq.blockTable().size(); i++) {
          assertTrue(owned.add(seq.blockTable().get(i)), "block shared by two sequences");
        }
        held += seq.blockTable().size();
      }
      assertEquals(blocks.totalBlocks(), held + blocks.freeBlocks(), "blocks leaked or double-freed");
      for (ScheduledChunk chunk : chunks) {
        Sequence seq = chunk.sequence();
        assertEquals(seq.computed(), chunk.start(), "chunks continue where the cache ends");
        assertTrue(seq.blockTable().size() * blocks.blockSize() >= chunk.start() + chunk.length(), "chunk without cache blocks");
        assertTrue(seq.length() <= seq.maxLength(), "sequence longer than its limit");
      }
      complete(chunks);
      for (ScheduledChunk chunk : chunks) {
        Sequence seq = chunk.sequence();
        if (chunk.samples() && (seq.length() >= seq.maxLength() || random.nextInt(50) == 0)) {
          scheduler.finish(seq);
          live.remove(seq);
          finished++;
        }
      }
    }
    assertFalse(scheduler.hasWork());
    assertEquals(blocks.totalBlocks(), blocks.freeBlocks(), "every block is free again");
    assertTrue(scheduler.preemptions() > 0, "the test must exercise preemption");
  }

  /**
   * With the prefix cache, requests drawn from a few shared beginnings: every cache slot a step
   * reads holds what the reading sequence itself would have computed there (the cache is simulated
   * as each position's whole prefix), sequences take cached blocks, the cache runs full and is
   * evicted, preemption happens, and every block is free at the end.
   */
  @Test
  void withPrefixCachingEverySlotReadHoldsTheReadersOwnPrefix() {
    Random random = new Random(7);
    BlockManager blocks = new BlockManager(48, 8, true);
    Scheduler scheduler = new Scheduler(12, 64, blocks);
    long[][] slots = new long[48][8];
    int[][] beginnings = new int[4][];
    for (int b = 0; b < beginnings.length; b++) {
      beginnings[b] = new int[8 + random.nextInt(40)];
      for (int i = 0; i < beginnings[b].length; i++) {
        beginnings[b][i] = random.nextInt(50);
      }
    }
    List<Sequence> live = new ArrayList<>();
    int submitted = 0;
    int finished = 0;
    while (finished < 3_000) {
      while (submitted < 3_000 && live.size() < 30 && random.nextInt(3) > 0) {
        int[] beginning = beginnings[random.nextInt(beginnings.length)];
        int[] prompt = new int[beginning.length + random.nextInt(20)];
        for (int i = 0; i < prompt.length; i++) {
          prompt[i] = i < beginning.length ? beginning[i] : random.nextInt(50);
        }
        Sequence seq = new Sequence(new GenerationRequest("r" + submitted++, prompt, SamplingParams.greedy(30)), prompt.length + 1
            + random.nextInt(30), TokenListener.NONE);
        live.add(seq);
        scheduler.add(seq);
      }
      List<ScheduledChunk> chunks = scheduler.schedule();
      assertFalse(chunks.isEmpty(), "work but nothing scheduled: the scheduler is stuck");
      for (int[] copy : scheduler.takeCopies()) {
        slots[copy[1]] = slots[copy[0]].clone();
      }
      Set<Integer> held = new HashSet<>();
      for (Sequence seq : live) {
        for (int i = 0; i < seq.blockTable().size(); i++) {
          held.add(seq.blockTable().get(i));
        }
      }
      assertTrue(held.size() + blocks.freeBlocks() <= blocks.totalBlocks(), "a block both held and free");
      for (ScheduledChunk chunk : chunks) {
        Sequence seq = chunk.sequence();
        assertEquals(seq.computed(), chunk.start(), "chunks continue where the cache ends");
        for (int p = 0; p < chunk.start(); p++) {
          assertEquals(prefix(seq, p), slots[seq.blockTable().get(p / 8)][p % 8], "position " + p + " of " + seq.request.id());
        }
        for (int p = chunk.start(); p < chunk.start() + chunk.length(); p++) {
          slots[seq.blockTable().get(p / 8)][p % 8] = prefix(seq, p);
        }
      }
      scheduler.computed(chunks);
      for (ScheduledChunk chunk : chunks) {
        Sequence seq = chunk.sequence();
        if (chunk.samples()) {
          draw(seq, (int) (prefix(seq, seq.length() - 1) & 31));
          if (seq.length() >= seq.maxLength() || random.nextInt(40) == 0) {
            scheduler.finish(seq);
            live.remove(seq);
            finished++;
          }
        }
      }
    }
    assertFalse(scheduler.hasWork());
    assertEquals(blocks.totalBlocks(), blocks.freeBlocks(), "every block is free again");
    assertTrue(scheduler.cachedTokens() > 10_000, "sequences took cached blocks: " + scheduler.cachedTokens());
    assertTrue(scheduler.preemptions() > 0, "the test must exercise preemption");
  }

  /**
   * Samples of one prompt submitted together: the first computes the prompt, the others wait for it
   * (another prompt goes ahead of them), then take its full blocks and a copy of its partial one,
   * computing only the prompt's last token.
   */
  @Test
  void samplesOfOnePromptComputeItOnce() {
    BlockManager blocks = new BlockManager(100, 4, true);
    Scheduler scheduler = new Scheduler(8, 64, blocks);
    int[] prompt = new int[10];
    for (int i = 0; i < prompt.length; i++) {
      prompt[i] = 3 * i + 1;
    }
    List<Sequence> samples = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      samples.add(new Sequence(new GenerationRequest("s" + i, prompt, SamplingParams.modelCard(i).withMaxNewTokens(5)), 15,
          TokenListener.NONE));
      scheduler.add(samples.get(i));
    }
    Sequence other = sequence("other", 6, 5);
    scheduler.add(other);

    List<ScheduledChunk> first = scheduler.schedule();
    assertEquals(List.of(samples.get(0), other), first.stream().map(ScheduledChunk::sequence).toList());
    scheduler.computed(first);
    first.forEach(c -> draw(c.sequence(), 1));

    List<ScheduledChunk> second = scheduler.schedule();
    assertEquals(List.of(samples.get(0), other, samples.get(1), samples.get(2)), second.stream().map(ScheduledChunk::sequence).toList());
    List<int[]> copies = scheduler.takeCopies();
    assertEquals(2, copies.size());
    for (int i = 1; i < 3; i++) {
      ScheduledChunk chunk = second.get(1 + i);
      assertEquals(9, chunk.start(), "two cached blocks of 4 taken, and position 8 copied");
      assertEquals(1, chunk.length());
      assertEquals(samples.get(0).blockTable().get(0), samples.get(i).blockTable().get(0));
      assertEquals(samples.get(0).blockTable().get(1), samples.get(i).blockTable().get(1));
      assertEquals(samples.get(0).blockTable().get(2), copies.get(i - 1)[0]);
      assertEquals(samples.get(i).blockTable().get(2), copies.get(i - 1)[1]);
    }
    assertEquals(18, scheduler.cachedTokens());
  }

  /** What a cache slot at position p holds for seq: a function of its tokens 0..p. */
  private static long prefix(Sequence seq, int p) {
    long h = 17;
    for (int i = 0; i <= p; i++) {
      h = h * 1_000_003 + seq.tokens().get(i);
    }
    return h;
  }
}
