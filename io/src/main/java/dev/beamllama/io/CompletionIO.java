package dev.beamllama.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.beam.sdk.extensions.avro.coders.AvroCoder;
import org.apache.beam.sdk.io.FileIO;
import org.apache.beam.sdk.io.TextIO;
import org.apache.beam.sdk.io.parquet.ParquetIO;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PDone;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.apache.beam.sdk.values.TypeDescriptors;

/**
 * Writes completion records as sharded JSON Lines or Parquet files under an output prefix:
 * {@code CompletionIO.write().to("out/completions").withFormat(RecordFormat.PARQUET)} writes
 * {@code out/completions-00000-of-00004.parquet} and so on. Beam's file sinks write to temporary
 * files and rename them when the bundle commits, so a retried or failed job leaves no partial file.
 */
public final class CompletionIO {
  /** The Avro schema of a completion record: the Parquet output's schema. */
  public static final String AVRO_SCHEMA_RESOURCE = "completion-record.avsc";

  private CompletionIO() {}

  public static Write write() {
    return new Write(null, RecordFormat.JSONL, 0);
  }

  public static Schema avroSchema() {
    try (InputStream in = CompletionIO.class.getResourceAsStream(AVRO_SCHEMA_RESOURCE)) {
      return new Schema.Parser().parse(in);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public static final class Write extends PTransform<PCollection<CompletionRecord>, PDone> {
    private final String prefix;
    private final RecordFormat format;
    private final int numShards;

    private Write(String prefix, RecordFormat format, int numShards) {
      this.prefix = prefix;
      this.format = format;
      this.numShards = numShards;
    }

    /** The output prefix: shards are named {@code PREFIX-SSSSS-of-NNNNN.jsonl|.parquet}. */
    public Write to(String prefix) {
      return new Write(prefix, format, numShards);
    }

    public Write withFormat(RecordFormat format) {
      if (format == RecordFormat.AUTO) {
        throw new IllegalArgumentException("the output format must be jsonl or parquet");
      }
      return new Write(prefix, format, numShards);
    }

    /** A fixed number of shards; 0 lets the runner choose. */
    public Write withNumShards(int numShards) {
      return new Write(prefix, format, numShards);
    }

    @Override
    public PDone expand(PCollection<CompletionRecord> completions) {
      if (prefix == null) {
        throw new IllegalArgumentException("CompletionIO.write() needs to(prefix)");
      }
      if (format == RecordFormat.PARQUET) {
        Schema schema = avroSchema();
        PCollection<GenericRecord> rows = completions
            .apply("ToAvro", MapElements.into(TypeDescriptor.of(GenericRecord.class)).via((CompletionRecord c) -> toAvro(c, schema)))
            .setCoder(AvroCoder.of(GenericRecord.class, schema));
        FilePrefix target = FilePrefix.of(prefix);
        FileIO.Write<Void, GenericRecord> write = FileIO.<GenericRecord>write()
            .via(ParquetIO.sink(schema))
            .to(target.directory())
            .withPrefix(target.name())
            .withSuffix(RecordFormat.PARQUET.extension());
        rows.apply("WriteParquet", numShards > 0 ? write.withNumShards(numShards) : write);
        return PDone.in(completions.getPipeline());
      }
      TextIO.Write write = TextIO.write().to(prefix).withSuffix(RecordFormat.JSONL.extension());
      return completions
          .apply("ToJson", MapElements.into(TypeDescriptors.strings()).via(CompletionIO::toJson))
          .apply("WriteJsonLines", numShards > 0 ? write.withNumShards(numShards) : write);
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
