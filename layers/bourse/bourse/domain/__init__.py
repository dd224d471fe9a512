"""Pure domain: amounts, symbols, commands, events and Binance errors. Imports no I/O."""
