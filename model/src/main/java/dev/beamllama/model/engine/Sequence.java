package dev.beamllama.model.engine;

import dev.beamllama.model.IntList;
import dev.beamllama.model.sampling.SamplingParams;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;

/**
 * A request as the engine tracks it: prompt and generated tokens in one list, how many of them
 * already have keys and values in the cache ({@code computed}), and the cache blocks holding them.
 * Owned by the engine's thread; model runners read it.
 *
 * <p>The last one or two tokens may be pending: drawn by a step still running, and stored as
 * {@code -1 - i} for its sample i until the engine learns them ({@link LlmEngine}). A step can already
 * compute a pending token: the runner reads it on the device.
 */
public final class Sequence {
  enum Status { WAITING, RUNNING, FINISHED }

  final GenerationRequest request;
  final CompletableFuture<GenerationResult> result = new CompletableFuture<>();
  final TokenListener listener;
  private final long submittedNanos = System.nanoTime();
  private long firstScheduledNanos;
  private long firstTokenNanos;

  private final IntList tokens;
  private final int promptLength;
  private final int promptKey;
  private final int maxLength;
  private final IntList blockTable = new IntList();
  private int computed;
  /** Trailing tokens drawn by steps that have not finished. */
  private int pendingTokens;
  /** Prompt tokens this sequence's steps computed: not those taken from the prefix cache, again after preemption. */
  private int promptComputed;
  /** Leading blocks the block manager has registered (or took from the cache), and the last one's hash. */
  private int hashedBlocks;
  private long lastHash;
  Status status = Status.WAITING;

  Sequence(GenerationRequest request, int maxLength, TokenListener listener) {
    this.request = request;
    this.tokens = IntList.of(request.promptIds());
    this.promptLength = request.promptIds().length;
    this.promptKey = Arrays.hashCode(request.promptIds());
    this.maxLength = maxLength;
    this.listener = listener;
  }

  public SamplingParams params() {
    return request.params();
  }

  /** Prompt then generated ids. */
  public IntList tokens() {
    return tokens;
  }

  public int length() {
    return tokens.size();
  }

  public int promptLength() {
    return promptLength;
  }

  /** Whether both were asked with the same prompt (samples of one record, typically). */
  boolean samePrompt(Sequence other) {
    return promptKey == other.promptKey && promptLength == other.promptLength
        && Arrays.equals(request.promptIds(), other.request.promptIds());
  }

  /** Generated tokens, pending ones included: the draw the next sample of this sequence makes. */
  public int generatedCount() {
    return tokens.size() - promptLength;
  }

  /** Tokens known on the host: all but the pending ones. */
  int known() {
    return tokens.size() - pendingTokens;
  }

  /** Cache block ids: block {@code i} holds positions {@code [i*blockSize, (i+1)*blockSize)}. */
  public IntList blockTable() {
    return blockTable;
  }

  /** Tokens whose keys and values are in the cache. */
  public int computed() {
    return computed;
  }

  int maxLength() {
    return maxLength;
  }

  int pending() {
    return tokens.size() - computed;
  }

  void markComputed(int count) {
    promptComputed += Math.max(0, Math.min(computed + count, promptLength) - computed);
    computed += count;
  }

  /** After preemption the cache is gone: everything, generated tokens included, is recomputed (or taken from the prefix cache). */
  void resetComputed() {
    computed = 0;
  }

  /** {@code tokens} in {@code blocks} leading blocks taken from the prefix cache, the last hashing to {@code hash}. */
  void markCached(int tokens, int blocks, long hash) {
    computed += tokens;
    hashedBlocks = blocks;
    lastHash = hash;
  }

  int hashedBlocks() {
    return hashedBlocks;
  }

  long lastHash() {
    return lastHash;
  }

  /** {@code tokens} whose keys and values the next step copies from another sequence's block. */
  void markCopied(int tokens) {
    computed += tokens;
  }

  /** One more leading block registered in the prefix cache, hashing to {@code hash}. */
  void hashed(long hash) {
    hashedBlocks++;
    lastHash = hash;
  }

  /** Its blocks are gone: none of them is this sequence's to register. */
  void unhash() {
    hashedBlocks = 0;
    lastHash = 0;
  }

  /** Appends the token sample {@code sample} of the step just launched draws; returns where it is. */
  int appendPending(int sample) {
    tokens.add(-1 - sample);
    pendingTokens++;
    return tokens.size() - 1;
  }

  /** The pending token at {@code index} (the first pending one) is {@code token}. */
  void resolve(int index, int token) {
    if (index != known()) {
      throw new IllegalStateException("token " + index + " resolved before token " + known());
    }
    if (firstTokenNanos == 0) {
      firstTokenNanos = System.nanoTime();
    }
    tokens.set(index, token);
    pendingTokens--;
  }

  void scheduledAt(long nanos) {
    if (firstScheduledNanos == 0) {
      firstScheduledNanos = nanos;
    }
  }

  GenerationResult result(FinishReason reason) {
    return new GenerationResult(request.id(), generated(), reason, promptLength, promptComputed,
        firstScheduledNanos - submittedNanos, firstTokenNanos - submittedNanos, System.nanoTime() - submittedNanos);
  }

  /** The generated tokens known so far (a sequence that finished leaves its pending ones out). */
  int[] generated() {
    return tokens.toArray(promptLength, known());
  }
}
