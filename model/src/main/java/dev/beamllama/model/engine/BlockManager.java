package dev.beamllama.model.engine;

/**
 * Bookkeeping for the paged KV cache: which fixed-size blocks are free and which belong to which
 * sequence. Holds no key or value data; the model runner owns the memory and reads the block tables.
 */
public final class BlockManager {
  private final int blockSize;
  private final int[] freeStack;
  private int freeCount;

  public BlockManager(int numBlocks, int blockSize) {
    if (numBlocks < 1 || blockSize < 1) {
      throw new IllegalArgumentException("numBlocks and blockSize must be positive");
    }
    this.blockSize = blockSize;
    this.freeStack = new int[numBlocks];
    // Lowest ids on top, so a fresh cache fills from block 0.
    for (int i = 0; i < numBlocks; i++) {
      freeStack[i] = numBlocks - 1 - i;
    }
    this.freeCount = numBlocks;
  }

  public int blockSize() {
    return blockSize;
  }

  public int totalBlocks() {
    return freeStack.length;
  }

  public int freeBlocks() {
    return freeCount;
  }

  /** Blocks {@code seq} still needs so that {@code newTokens} more tokens fit after its computed ones. */
  public int blocksNeeded(Sequence seq, int newTokens) {
    int needed = ceilDiv(seq.computed() + newTokens, blockSize);
    return Math.max(0, needed - seq.blockTable().size());
  }

  public boolean canAllocate(Sequence seq, int newTokens) {
    return blocksNeeded(seq, newTokens) <= freeCount;
  }

  public void allocate(Sequence seq, int newTokens) {
    int needed = blocksNeeded(seq, newTokens);
    if (needed > freeCount) {
      throw new IllegalStateException("KV cache exhausted: need " + needed + " blocks, " + freeCount + " free");
    }
    for (int i = 0; i < needed; i++) {
      seq.blockTable().add(freeStack[--freeCount]);
    }
  }

  public void free(Sequence seq) {
    for (int i = seq.blockTable().size() - 1; i >= 0; i--) {
      freeStack[freeCount++] = seq.blockTable().get(i);
    }
    seq.blockTable().clear();
  }

  static int ceilDiv(int a, int b) {
    return (a + b - 1) / b;
  }
}
