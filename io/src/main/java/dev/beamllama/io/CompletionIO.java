package dev.beamllama.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.channels.WritableByteChannel;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.beam.sdk.io.FileIO;
import org.apache.beam.sdk.io.TextIO;
import org.apache.beam.sdk.io.parquet.ParquetIO;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PDone;

/**
 * Writes completion records as sharded JSON Lines or Parquet files under an output prefix:
 * {@code CompletionIO.write().to("out/completions").withFormat(RecordFormat.PARQUET)} writes
 * {@code out/completions-00000-of-00004.parquet} and so on. Beam's file sinks write to temporary
 * files and rename them when the bundle commits, so a retried or failed job leaves no partial file.
 *
 * <p>{@code fromJournal(directory)} writes the completions of journaled samples' keys, read from
 * the job's journal ({@link CompletionJournal}) as each is written: the completions themselves
 * never wait in the runner for the write.
 */
public final class CompletionIO {
  /** The Avro schema of a completion record: the Parquet output's schema. */
  public static final String AVRO_SCHEMA_RESOURCE = "completion-record.avsc";

  private CompletionIO() {}

  public static Write<CompletionRecord> write() {
    return new Write<>(null, RecordFormat.JSONL, 0, c -> c);
  }

  public static Schema avroSchema() {
    try (InputStream in = CompletionIO.class.getResourceAsStream(AVRO_SCHEMA_RESOURCE)) {
      return new Schema.Parser().parse(in);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Writes elements of {@code T}, each resolved to its completion record as it is written. */
  public static final class Write<T> extends PTransform<PCollection<T>, PDone> {
    private final String prefix;
    private final RecordFormat format;
    private final int numShards;
    private final SerializableFunction<T, CompletionRecord> resolve;

    private Write(String prefix, RecordFormat format, int numShards, SerializableFunction<T, CompletionRecord> resolve) {
      this.prefix = prefix;
      this.format = format;
      this.numShards = numShards;
      this.resolve = resolve;
    }

    /** The output prefix: shards are named {@code PREFIX-SSSSS-of-NNNNN.jsonl|.parquet}. */
    public Write<T> to(String prefix) {
      return new Write<>(prefix, format, numShards, resolve);
    }

    public Write<T> withFormat(RecordFormat format) {
      if (format == RecordFormat.AUTO) {
        throw new IllegalArgumentException("the output format must be jsonl or parquet");
      }
      return new Write<>(prefix, format, numShards, resolve);
    }

    /** A fixed number of shards; 0 lets the runner choose. */
    public Write<T> withNumShards(int numShards) {
      return new Write<>(prefix, format, numShards, resolve);
    }

    /** Writes journaled samples, each read from the journal in {@code directory} (this JVM's or another's, on the same storage). */
    public Write<JournaledSample> fromJournal(String directory) {
      return new Write<>(prefix, format, numShards, new FromJournal(directory));
    }

    @Override
    public PDone expand(PCollection<T> completions) {
      if (prefix == null) {
        throw new IllegalArgumentException("CompletionIO.write() needs to(prefix)");
      }
      // Each element becomes its completion only as its file is written, so the runner holds the
      // elements (keys, when they come from the journal) until then, never the completions.
      SerializableFunction<T, CompletionRecord> completionOf = resolve;
      if (format == RecordFormat.PARQUET) {
        FilePrefix target = FilePrefix.of(prefix);
        FileIO.Write<Void, T> write = FileIO.<T>write()
            .via(new ParquetSink<>(completionOf))
            .to(target.directory())
            .withPrefix(target.name())
            .withSuffix(RecordFormat.PARQUET.extension());
        completions.apply("WriteParquet", numShards > 0 ? write.withNumShards(numShards) : write);
        return PDone.in(completions.getPipeline());
      }
      // TextIO's own sink, formatting as it writes: with a fixed shard count it also writes the
      // shards no record fell into, empty, so a reader finds every file the names promise.
      TextIO.TypedWrite<T, Void> write = TextIO.<T>writeCustomType()
          .to(prefix)
          .withSuffix(RecordFormat.JSONL.extension())
          .withFormatFunction(element -> toJson(completionOf.apply(element)));
      completions.apply("WriteJsonLines", numShards > 0 ? write.withNumShards(numShards) : write);
      return PDone.in(completions.getPipeline());
    }
  }

  /** One Parquet file: each element resolved to its completion as it is written. */
  private static final class ParquetSink<T> implements FileIO.Sink<T> {
    private final SerializableFunction<T, CompletionRecord> resolve;
    private final FileIO.Sink<GenericRecord> parquet = ParquetIO.sink(avroSchema());
    private transient Schema schema;

    ParquetSink(SerializableFunction<T, CompletionRecord> resolve) {
      this.resolve = resolve;
    }

    @Override
    public void open(WritableByteChannel channel) throws IOException {
      schema = avroSchema();
      parquet.open(channel);
    }

    @Override
    public void write(T element) throws IOException {
      parquet.write(toAvro(resolve.apply(element), schema));
    }

    @Override
    public void flush() throws IOException {
      parquet.flush();
    }
  }

  /** A journaled sample's completion, read from the journal of its job. */
  private static final class FromJournal implements SerializableFunction<JournaledSample, CompletionRecord> {
    private final String directory;
    private transient JournalIndex index;

    FromJournal(String directory) {
      this.directory = directory;
    }

    @Override
    public CompletionRecord apply(JournaledSample sample) {
      if (index == null) {
        index = JournalIndex.of(directory);
      }
      return index.require(sample.id(), sample.sampleIndex());
    }
  }

  private static final ObjectMapper JSON = new ObjectMapper();

  static String toJson(Object record) {
    try {
      return JSON.writeValueAsString(record);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  static GenericRecord toAvro(CompletionRecord c, Schema schema) {
    GenericData.Record r = new GenericData.Record(schema);
    r.put("id", c.id());
    r.put("sample_index", c.sampleIndex());
    r.put("completion", c.completion());
    r.put("finish_reason", c.finishReason());
    r.put("prompt_tokens", c.promptTokens());
    r.put("prompt_truncated", c.promptTruncated());
    r.put("completion_tokens", c.completionTokens());
    r.put("model", c.model());
    r.put("task", c.task());
    r.put("seed", c.seed());
    r.put("temperature", c.temperature());
    r.put("top_k", c.topK());
    r.put("top_p", c.topP());
    r.put("repetition_penalty", c.repetitionPenalty());
    r.put("max_new_tokens", c.maxNewTokens());
    r.put("latency_ms", c.latencyMs());
    return r;
  }

  /** Splits an output prefix into the directory FileIO writes to and the file-name prefix. */
  record FilePrefix(String directory, String name) {
    static FilePrefix of(String prefix) {
      int slash = prefix.lastIndexOf('/');
      return slash < 0 ? new FilePrefix(".", prefix) : new FilePrefix(prefix.substring(0, slash + 1), prefix.substring(slash + 1));
    }
  }
}
