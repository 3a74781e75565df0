package dev.beamllama.model.engine;

import dev.beamllama.model.IntList;
import java.util.List;

/**
 * One step as the model computes it, laid out once by the engine from the scheduled chunks (as
 * nano-vllm's prepare_prefill and prepare_decode do): the token rows in chunk order, each with its
 * position, its cache slot ({@code block * blockSize + offset}) and the sequence it belongs to;
 * each sequence's block table; and the rows whose logits are sampled, with their sequences. A
 * runner reads it and runs the forward pass and the sampler; it never lays out rows itself.
 *
 * <p>Arrays are sized for the largest step and reused: only their first {@link #rows()},
 * {@link #sequences()} and {@link #samples()} entries belong to this step.
 */
public final class StepBatch {
  private final int blockSize;
  private final int maxBlocks;
  private final int[] tokens;
  private final int[] positions;
  private final int[] slots;
  private final int[] rowSequence;
  private final int[] blockTables;
  private final int[] tableLengths;
  private final int[] sampleRows;
  private final Sequence[] sampled;
  private final List<int[]> blockCopies = new java.util.ArrayList<>();
  private int rows;
  private int sequences;
  private int samples;

  /**
   * Room for {@code maxRows} rows of up to {@code maxSequences} sequences, each as long as
   * {@code maxSequenceLength} tokens in blocks of {@code blockSize}.
   */
  public StepBatch(int maxRows, int maxSequences, int blockSize, int maxSequenceLength) {
    this.blockSize = blockSize;
    this.maxBlocks = Math.ceilDiv(maxSequenceLength, blockSize);
    this.tokens = new int[maxRows];
    this.positions = new int[maxRows];
    this.slots = new int[maxRows];
    this.rowSequence = new int[maxRows];
    this.blockTables = new int[maxSequences * maxBlocks];
    this.tableLengths = new int[maxSequences];
    this.sampleRows = new int[Math.max(maxRows, maxSequences)];
    this.sampled = new Sequence[Math.max(maxRows, maxSequences)];
  }

  /**
   * Lays out {@code chunks}: sequence c is chunk c, and a chunk that reaches its sequence's end
   * samples at its last row; {@code copies} are the cache blocks {from, to} to copy first.
   */
  void prepare(List<ScheduledChunk> chunks, List<int[]> copies) {
    clear();
    blockCopies.addAll(copies);
    for (ScheduledChunk chunk : chunks) {
      Sequence seq = chunk.sequence();
      int sequence = addSequence(seq.blockTable());
      for (int i = 0; i < chunk.length(); i++) {
        addRow(seq.tokens().get(chunk.start() + i), chunk.start() + i, sequence);
      }
      if (chunk.samples()) {
        sampleRows[samples] = rows - 1;
        sampled[samples++] = seq;
      }
    }
  }

  /**
   * Rows {@code [start, start + count)} of a prompt scored on a cache of its own whose blocks are
   * 0, 1, 2...: every row's logits are wanted and none is sampled ({@link #sequence(int)} is null).
   */
  public static StepBatch prompt(int[] ids, int start, int count, int blockSize) {
    StepBatch batch = new StepBatch(count, 1, blockSize, start + count);
    IntList table = new IntList();
    for (int b = 0; b < batch.maxBlocks; b++) {
      table.add(b);
    }
    int sequence = batch.addSequence(table);
    for (int i = 0; i < count; i++) {
      batch.addRow(ids[start + i], start + i, sequence);
      batch.sampleRows[batch.samples++] = i;
    }
    return batch;
  }

  private void clear() {
    blockCopies.clear();
    rows = 0;
    sequences = 0;
    samples = 0;
    java.util.Arrays.fill(sampled, null);
  }

  private int addSequence(IntList table) {
    int base = sequences * maxBlocks;
    for (int b = 0; b < table.size(); b++) {
      blockTables[base + b] = table.get(b);
    }
    tableLengths[sequences] = table.size();
    return sequences++;
  }

  private void addRow(int token, int position, int sequence) {
    tokens[rows] = token;
    positions[rows] = position;
    slots[rows] = blockTables[sequence * maxBlocks + position / blockSize] * blockSize + position % blockSize;
    rowSequence[rows] = sequence;
    rows++;
  }

  public int rows() {
    return rows;
  }

  /**
   * Cache blocks {from, to} whose keys and values (every layer) the runner copies before it computes
   * the step: a sequence taking a copy of another's partial block (prefix caching).
   */
  public List<int[]> blockCopies() {
    return blockCopies;
  }

  public int sequences() {
    return sequences;
  }

  /** Rows whose logits the step needs: the sampled ones (or, for a prompt, all). */
  public int samples() {
    return samples;
  }

  public int blockSize() {
    return blockSize;
  }

  /** Columns of {@link #blockTables()}: the blocks of the longest sequence. */
  public int maxBlocks() {
    return maxBlocks;
  }

  /**
   * Each row's token id; in a step launched before the previous one finished ({@link
   * ModelRunner#overlapsSteps()}), {@code -1 - i} for the token that step's sample i draws.
   */
  public int[] tokens() {
    return tokens;
  }

  public int[] positions() {
    return positions;
  }

  /** Each row's cache slot: {@code block * blockSize + offset}, where its key and value go. */
  public int[] slots() {
    return slots;
  }

  /** Each row's sequence, an index into {@link #blockTables()}. */
  public int[] rowSequence() {
    return rowSequence;
  }

  /**
   * {@code [sequence][maxBlocks]}: sequence s's block b at {@code s * maxBlocks() + b}, for b below
   * {@code tableLengths()[s]} (the entries after it are stale).
   */
  public int[] blockTables() {
    return blockTables;
  }

  /** The blocks each sequence holds: how much of its row of {@link #blockTables()} is its table. */
  public int[] tableLengths() {
    return tableLengths;
  }

  /** The row of each sample's logits, in order. */
  public int[] sampleRows() {
    return sampleRows;
  }

  /** The sequence sample {@code i} draws the next token for (its tokens, parameters and step); null in a prompt batch. */
  public Sequence sequence(int i) {
    return sampled[i];
  }
}
