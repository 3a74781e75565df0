package dev.beamllama.model.engine;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;

/**
 * Bookkeeping for the paged KV cache: which fixed-size blocks are free and which belong to which
 * sequence. Holds no key or value data; the model runner owns the memory and reads the block tables.
 *
 * <p>With prefix caching, a full block whose keys and values are computed is known by its tokens and
 * all the tokens before them (a hash chained from block to block; a hit also compares the block's
 * tokens and its predecessor's hash). A new sequence whose tokens begin with cached blocks takes them
 * instead of computing them again; blocks are shared, counting their users; a block whose last user
 * is gone stays cached until its space is needed, the least recently released first. Keys and values
 * depend only on the tokens up to their position (the runners' results do not depend on the batch),
 * so a sequence's tokens are the same with and without the cache.
 */
public final class BlockManager {
  private static final long FIRST_BLOCK = 0x2545F4914F6CDD1DL;

  private final int blockSize;
  private final boolean prefixCaching;
  private final int[] users;
  private final int[] freeStack;
  private int freeCount;
  /** Cached blocks nobody uses, least recently released first: taken when the free stack is empty. */
  private final LinkedHashSet<Integer> evictable = new LinkedHashSet<>();
  private final Map<Long, Integer> cached = new HashMap<>();
  private final boolean[] hashed;
  private final long[] hash;
  private final long[] previousHash;
  private final int[] blockTokens;
  /** Block copies {from, to} the next step makes before it computes (a partial block taken from a twin). */
  private final List<int[]> copies = new ArrayList<>();

  public BlockManager(int numBlocks, int blockSize) {
    this(numBlocks, blockSize, false);
  }

  public BlockManager(int numBlocks, int blockSize, boolean prefixCaching) {
    if (numBlocks < 1 || blockSize < 1) {
      throw new IllegalArgumentException("numBlocks and blockSize must be positive");
    }
    this.blockSize = blockSize;
    this.prefixCaching = prefixCaching;
    this.users = new int[numBlocks];
    this.freeStack = new int[numBlocks];
    // Lowest ids on top, so a fresh cache fills from block 0.
    for (int i = 0; i < numBlocks; i++) {
      freeStack[i] = numBlocks - 1 - i;
    }
    this.freeCount = numBlocks;
    this.hashed = new boolean[prefixCaching ? numBlocks : 0];
    this.hash = new long[prefixCaching ? numBlocks : 0];
    this.previousHash = new long[prefixCaching ? numBlocks : 0];
    this.blockTokens = new int[prefixCaching ? numBlocks * blockSize : 0];
  }

  public int blockSize() {
    return blockSize;
  }

  public boolean prefixCaching() {
    return prefixCaching;
  }

  public int totalBlocks() {
    return freeStack.length;
  }

  /** Blocks a sequence can be given: free ones and cached ones nobody uses. */
  public int freeBlocks() {
    return freeCount + evictable.size();
  }

  /** Blocks {@code seq} still needs so that {@code newTokens} more tokens fit after its computed ones. */
  public int blocksNeeded(Sequence seq, int newTokens) {
    int needed = ceilDiv(seq.computed() + newTokens, blockSize);
    return Math.max(0, needed - seq.blockTable().size());
  }

  public boolean canAllocate(Sequence seq, int newTokens) {
    return blocksNeeded(seq, newTokens) <= freeBlocks();
  }

  public void allocate(Sequence seq, int newTokens) {
    int needed = blocksNeeded(seq, newTokens);
    if (needed > freeBlocks()) {
      throw new IllegalStateException("KV cache exhausted: need " + needed + " blocks, " + freeBlocks() + " free");
    }
    for (int i = 0; i < needed; i++) {
      seq.blockTable().add(take());
    }
  }

  private int take() {
    int block = freeCount > 0 ? freeStack[--freeCount] : evict();
    users[block] = 1;
    return block;
  }

  /** The least recently released cached block, forgotten. */
  private int evict() {
    Iterator<Integer> oldest = evictable.iterator();
    int block = oldest.next();
    oldest.remove();
    cached.remove(hash[block]);
    hashed[block] = false;
    return block;
  }

  /**
   * Gives a sequence that holds no blocks yet the cached blocks its tokens begin with, leaving at
   * least its last token to compute (its logits are needed), and marks their tokens computed.
   */
  public void takeCached(Sequence seq) {
    if (!prefixCaching || seq.blockTable().size() != 0 || seq.computed() != 0) {
      return;
    }
    long previous = FIRST_BLOCK;
    int reusable = (seq.length() - 1) / blockSize;
    int taken = 0;
    while (taken < reusable) {
      long h = chain(previous, seq, taken);
      Integer block = cached.get(h);
      if (block == null || previousHash[block] != previous || !sameTokens(block, seq, taken)) {
        break;
      }
      if (users[block]++ == 0) {
        evictable.remove(block);
      }
      seq.blockTable().add(block);
      previous = h;
      taken++;
    }
    if (taken > 0) {
      seq.markCached(taken * blockSize, taken, previous);
    }
  }

  /**
   * After {@link #takeCached}: gives {@code seq} a copy of the block {@code twin} (same prompt, computed
   * up to its last token) holds after the cached ones, made before the next step computes, and marks
   * the copied prompt tokens computed: the sample then computes its last prompt token only.
   */
  public void takePartial(Sequence seq, Sequence twin) {
    int index = seq.blockTable().size();
    int copied = seq.promptLength() - 1 - index * blockSize;
    if (!prefixCaching || copied <= 0 || copied >= blockSize || seq.computed() != index * blockSize
        || twin.computed() < seq.promptLength() - 1 || twin.blockTable().size() <= index || freeBlocks() == 0) {
      return;
    }
    int block = take();
    seq.blockTable().add(block);
    copies.add(new int[] {twin.blockTable().get(index), block});
    seq.markCopied(copied);
  }

  /** The block copies the next step must make first, in order; cleared. */
  public List<int[]> takeCopies() {
    List<int[]> taken = List.copyOf(copies);
    copies.clear();
    return taken;
  }

  /**
   * Registers the blocks of {@code seq} that became full and computed, so later sequences can take
   * them; a block holding a pending token waits until it is known.
   */
  public void cacheComputed(Sequence seq) {
    if (!prefixCaching) {
      return;
    }
    while ((seq.hashedBlocks() + 1) * blockSize <= Math.min(seq.computed(), seq.known())) {
      int index = seq.hashedBlocks();
      long previous = index == 0 ? FIRST_BLOCK : seq.lastHash();
      long h = chain(previous, seq, index);
      int block = seq.blockTable().get(index);
      // A block computed twice at once (two samples of one prompt admitted in the same step) is
      // cached once: the copy stays private and is freed with its sequence.
      if (!hashed[block] && !cached.containsKey(h)) {
        hashed[block] = true;
        hash[block] = h;
        previousHash[block] = previous;
        for (int i = 0; i < blockSize; i++) {
          blockTokens[block * blockSize + i] = seq.tokens().get(index * blockSize + i);
        }
        cached.put(h, block);
      }
      seq.hashed(h);
    }
  }

  public void free(Sequence seq) {
    for (int i = seq.blockTable().size() - 1; i >= 0; i--) {
      int block = seq.blockTable().get(i);
      copies.removeIf(copy -> copy[1] == block); // a copy into a block given back before its step
      if (--users[block] == 0) {
        // Released deepest first: a sequence's later blocks are evicted before its first ones.
        if (prefixCaching && hashed[block]) {
          evictable.add(block);
        } else {
          freeStack[freeCount++] = block;
        }
      }
    }
    seq.blockTable().clear();
    seq.unhash();
  }

  private boolean sameTokens(int block, Sequence seq, int index) {
    for (int i = 0; i < blockSize; i++) {
      if (blockTokens[block * blockSize + i] != seq.tokens().get(index * blockSize + i)) {
        return false;
      }
    }
    return true;
  }

  /** The hash of block {@code index} of {@code seq}'s tokens after blocks hashing to {@code previous}. */
  private long chain(long previous, Sequence seq, int index) {
    long h = previous;
    for (int i = 0; i < blockSize; i++) {
      h = mix(h ^ seq.tokens().get(index * blockSize + i));
    }
    return h;
  }

  /** SplitMix64's finalizer: every input bit moves every output bit. */
  private static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  static int ceilDiv(int a, int b) {
    return (a + b - 1) / b;
  }
}
