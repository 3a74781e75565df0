package dev.beamllama.io;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.lang.management.ManagementFactory;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.Executor;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * This JVM's journal file: every DoFn instance of the worker appends to one file, through one
 * thread, so the engine's thread never waits on the disk. Each appended line reaches the operating
 * system at once, so the job's own writer can read it back ({@link JournalIndex}) and a killed JVM
 * loses nothing; it reaches the disk every {@code syncSamples} samples or {@code syncMillis},
 * whichever comes first, so a machine that goes down loses at most those since the last sync.
 * Leased like the engine: the file is synced and closed when the last lease is returned; when the
 * JVM exits, it is synced.
 */
public final class JournalWriter {
  private static final Map<String, JournalWriter> OPEN = new HashMap<>();

  static {
    Runtime.getRuntime().addShutdownHook(new Thread(JournalWriter::syncAll, "journal-shutdown"));
  }

  private final CompletionJournal.Spec spec;
  private final Path file;
  private final FileChannel channel;
  private final Writer out;
  private final ScheduledExecutorService thread;
  private int leases;
  private int unsynced;
  private IOException failure;

  private JournalWriter(CompletionJournal.Spec spec) throws IOException {
    this.spec = spec;
    Path directory = Path.of(spec.directory());
    Files.createDirectories(directory);
    String worker = ManagementFactory.getRuntimeMXBean().getName().replaceAll("[^A-Za-z0-9.-]", "_") + "-" + UUID.randomUUID();
    this.file = directory.resolve(CompletionJournal.fileName(worker));
    this.channel = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
    this.out = new BufferedWriter(new OutputStreamWriter(Channels.newOutputStream(channel), StandardCharsets.UTF_8), 1 << 16);
    this.thread = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "journal-" + directory.getFileName());
      t.setDaemon(true);
      return t;
    });
    out.write(CompletionJournal.headerLine(spec.job()));
    out.write('\n');
    sync();
    thread.scheduleWithFixedDelay(this::syncQuietly, spec.syncMillis(), spec.syncMillis(), TimeUnit.MILLISECONDS);
  }

  /** A hold on this JVM's journal file; closing it returns the hold, once. */
  public static final class Lease implements AutoCloseable {
    private final JournalWriter writer;
    private boolean closed;

    private Lease(JournalWriter writer) {
      this.writer = writer;
    }

    public JournalWriter writer() {
      return writer;
    }

    /** The last lease to close syncs and closes the file. */
    @Override
    public void close() {
      synchronized (JournalWriter.class) {
        if (closed) {
          return;
        }
        closed = true;
      }
      writer.release();
    }
  }

  /** Leases this JVM's writer for {@code spec}'s run, opened by the first caller. */
  public static synchronized Lease acquire(CompletionJournal.Spec spec) {
    JournalWriter w = OPEN.get(spec.run());
    if (w == null) {
      try {
        w = new JournalWriter(spec);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot open a journal file in " + spec.directory(), e);
      }
      OPEN.put(spec.run(), w);
    }
    w.leases++;
    return new Lease(w);
  }

  /** The thread appends run on: callers build their records there too, off their own threads. */
  public Executor executor() {
    return thread;
  }

  /**
   * Appends one finished sample and hands it to the operating system; fails (and fails every later
   * append) if the journal cannot be written.
   */
  public synchronized void append(CompletionRecord record) {
    try {
      if (failure != null) {
        throw failure;
      }
      out.write(CompletionIO.toJson(record));
      out.write('\n');
      out.flush();
      if (++unsynced >= spec.syncSamples()) {
        sync();
      }
    } catch (IOException e) {
      failure = e;
      throw new UncheckedIOException("cannot append to the journal " + file + ": the job cannot keep its finished work safe", e);
    }
  }

  private synchronized void sync() throws IOException {
    out.flush();
    channel.force(false);
    unsynced = 0;
  }

  private synchronized void syncQuietly() {
    if (unsynced > 0 && failure == null && channel.isOpen()) {
      try {
        sync();
      } catch (IOException e) {
        failure = e; // the next append reports it
      }
    }
  }

  private void release() {
    synchronized (JournalWriter.class) {
      if (--leases > 0) {
        return;
      }
      OPEN.remove(spec.run());
    }
    close();
  }

  private synchronized void close() {
    thread.shutdownNow();
    try {
      if (channel.isOpen()) {
        sync();
        out.close();
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot sync the journal " + file, e);
    }
  }

  private static void syncAll() {
    synchronized (JournalWriter.class) {
      OPEN.values().forEach(JournalWriter::syncQuietly);
    }
  }
}
