using Daop.Engine.Api;
using Daop.Extensions.AI;
using Microsoft.Extensions.AI;

using var model = DaopModel.Load("models/tiny-mixtral-code", new DaopOptions { Parallel = 4 });
IChatClient chat = new DaopChatClient(model);

List<ChatMessage> history = [new(ChatRole.System, "You write short Python functions.")];
history.Add(new(ChatRole.User, "Reverse a string"));
var reply = await chat.GetResponseAsync(history, new ChatOptions { MaxOutputTokens = 64, Temperature = 0 });
Console.WriteLine($"{reply.Text}\n[{reply.Usage?.OutputTokenCount} tokens, {reply.FinishReason}]");

history.AddMessages(reply);
history.Add(new(ChatRole.User, "Now for a list"));
await foreach (var update in chat.GetStreamingResponseAsync(history, new ChatOptions { MaxOutputTokens = 64 }))
    Console.Write(update.Text);
