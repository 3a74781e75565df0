package dev.beamllama.model;

import java.util.Arrays;

/** A growable array of ints: token sequences grow one id at a time and are read by index. */
public final class IntList {
  private int[] values;
  private int size;

  public IntList() {
    this(16);
  }

  public IntList(int capacity) {
    values = new int[Math.max(1, capacity)];
  }

  public static IntList of(int[] values) {
    IntList list = new IntList(values.length + 16);
    list.addAll(values);
    return list;
  }

  public void add(int value) {
    if (size == values.length) {
      values = Arrays.copyOf(values, size * 2);
    }
    values[size++] = value;
  }

  public void addAll(int[] more) {
    if (size + more.length > values.length) {
      values = Arrays.copyOf(values, Math.max(size * 2, size + more.length));
    }
    System.arraycopy(more, 0, values, size, more.length);
    size += more.length;
  }

  public int get(int index) {
    if (index >= size) {
      throw new IndexOutOfBoundsException(index + " >= " + size);
    }
    return values[index];
  }

  public void set(int index, int value) {
    if (index >= size) {
      throw new IndexOutOfBoundsException(index + " >= " + size);
    }
    values[index] = value;
  }

  /** The backing array, valid up to {@link #size()}: lets hot loops read without copying. */
  public int[] elements() {
    return values;
  }

  public int size() {
    return size;
  }

  public int last() {
    return values[size - 1];
  }

  public void clear() {
    size = 0;
  }

  public int[] toArray() {
    return Arrays.copyOf(values, size);
  }

  public int[] toArray(int from, int to) {
    return Arrays.copyOfRange(values, from, to);
  }
}
