package dev.beamllama.model.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.Iterator;
import java.util.List;

/**
 * Decides what each step computes. Running sequences go first (a decode token each, or the next
 * chunk of their prompt), then waiting ones are admitted in arrival order while the step's token
 * budget, the sequence limit and the free cache blocks allow: a finished sequence's slot is refilled
 * at the next step (continuous batching). When the cache runs out, the most recently admitted
 * sequence is preempted: its blocks are freed and it waits at the head of the queue to be
 * recomputed, which gives the same tokens because sampling depends on (seed, step) only.
 *
 * <p>With prefix caching, an admitted sequence first takes the cached blocks its tokens begin with
 * ({@link BlockManager#takeCached}); and a sequence whose prompt a running one is still computing
 * (another sample of the same record) waits for it, letting later arrivals go first, then also
 * takes a copy of its partial last block ({@link BlockManager#takePartial}): the prompt is computed
 * once, and each other sample computes its last token.
 */
public final class Scheduler {
  private final int maxNumSeqs;
  private final int maxBatchTokens;
  private final BlockManager blocks;
  private final Deque<Sequence> waiting = new ArrayDeque<>();
  private final List<Sequence> running = new ArrayList<>();
  private long preemptions;
  private long cachedTokens;

  public Scheduler(int maxNumSeqs, int maxBatchTokens, BlockManager blocks) {
    this.maxNumSeqs = maxNumSeqs;
    this.maxBatchTokens = maxBatchTokens;
    this.blocks = blocks;
  }

  public void add(Sequence seq) {
    seq.status = Sequence.Status.WAITING;
    waiting.addLast(seq);
  }

  public boolean hasWork() {
    return !waiting.isEmpty() || !running.isEmpty();
  }

  public int runningCount() {
    return running.size();
  }

  public int waitingCount() {
    return waiting.size();
  }

  public long preemptions() {
    return preemptions;
  }

  /** Tokens admitted sequences took from the prefix cache instead of computing them. */
  public long cachedTokens() {
    return cachedTokens;
  }

  /**
   * The chunks of the next step; allocates their cache blocks. Empty only when there is no work, or
   * when what runs waits for the tokens of the step in flight.
   */
  public List<ScheduledChunk> schedule() {
    List<ScheduledChunk> chunks = new ArrayList<>();
    int budget = maxBatchTokens;
    for (int i = 0; i < running.size() && budget > 0; i++) {
      Sequence seq = running.get(i);
      if (seq.length() >= seq.maxLength()) {
        continue; // its last token is pending: it finishes when that step does
      }
      int length = Math.min(seq.pending(), budget);
      if (!makeRoom(seq, length)) {
        i--; // seq itself was preempted and removed from running
        continue;
      }
      blocks.allocate(seq, length);
      chunks.add(ScheduledChunk.next(seq, length));
      budget -= length;
    }
    Iterator<Sequence> queue = waiting.iterator();
    while (queue.hasNext() && running.size() < maxNumSeqs && budget > 0) {
      Sequence seq = queue.next();
      Sequence twin = twin(seq);
      if (twin != null && twin.computed() < seq.promptLength() - 1) {
        continue; // it takes its twin's prompt blocks from the cache once they are computed
      }
      blocks.takeCached(seq);
      if (twin != null) {
        blocks.takePartial(seq, twin);
      }
      int length = Math.min(seq.pending(), budget);
      if (!blocks.canAllocate(seq, length)) {
        // Not admitted this step: it gives the cached blocks back and takes them again when it is.
        blocks.free(seq);
        seq.resetComputed();
        if (running.isEmpty()) {
          throw new IllegalStateException("sequence " + seq.request.id() + " needs more KV blocks than the whole cache holds");
        }
        break; // first come, first served: later arrivals do not overtake
      }
      queue.remove();
      cachedTokens += seq.computed();
      seq.status = Sequence.Status.RUNNING;
      running.add(seq);
      blocks.allocate(seq, length);
      chunks.add(ScheduledChunk.next(seq, length));
      budget -= length;
    }
    return chunks;
  }

  /**
   * A running sequence with the same prompt as {@code seq}, which has computed nothing yet (another
   * sample of the same record), or null; one still computing the prompt comes first, as {@code seq}
   * then waits for it rather than computing the prompt too.
   */
  private Sequence twin(Sequence seq) {
    if (!blocks.prefixCaching() || seq.computed() != 0) {
      return null;
    }
    Sequence twin = null;
    for (Sequence other : running) {
      if (other.samePrompt(seq)) {
        if (other.computed() < seq.promptLength() - 1) {
          return other;
        }
        twin = twin == null ? other : twin;
      }
    }
    return twin;
  }

  /** The block copies the next step must make before it computes ({@link BlockManager#takePartial}). */
  public List<int[]> takeCopies() {
    return blocks.takeCopies();
  }

  /**
   * Frees blocks for {@code length} more tokens of {@code seq} by preempting the latest admitted
   * sequences; false when {@code seq} itself had to go.
   */
  private boolean makeRoom(Sequence seq, int length) {
    while (!blocks.canAllocate(seq, length)) {
      Sequence victim = running.get(running.size() - 1);
      preempt(victim);
      if (victim == seq) {
        return false;
      }
    }
    return true;
  }

  private void preempt(Sequence seq) {
    running.remove(seq);
    blocks.free(seq);
    seq.resetComputed();
    seq.status = Sequence.Status.WAITING;
    waiting.addFirst(seq);
    preemptions++;
  }

  /**
   * After a step is launched: its chunks' tokens count as computed (every later step runs after it),
   * and their full blocks of known tokens go into the prefix cache.
   */
  public void computed(List<ScheduledChunk> chunks) {
    for (ScheduledChunk chunk : chunks) {
      chunk.sequence().markComputed(chunk.length());
      blocks.cacheComputed(chunk.sequence());
    }
  }

  /** A pending token of {@code seq} became known: a block it completes can go into the prefix cache. */
  public void resolved(Sequence seq) {
    blocks.cacheComputed(seq);
  }

  /** Removes a finished or failed sequence and frees its blocks. */
  public void finish(Sequence seq) {
    running.remove(seq);
    waiting.remove(seq);
    blocks.free(seq);
    seq.status = Sequence.Status.FINISHED;
  }

  /** Every sequence still held, running first; used when the engine shuts down. */
  List<Sequence> all() {
    List<Sequence> all = new ArrayList<>(running);
    all.addAll(waiting);
    return all;
  }
}
